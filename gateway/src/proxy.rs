//! The reverse proxy: a Tower service that forwards one route's requests to
//! its upstream with the serving thread's [`UpstreamClient`].
//!
//! On the way up it removes hop-by-hop headers and every client-sent identity
//! header (also spelled with `_`), drops the token headers unless the route
//! forwards them, sets the identity headers of the user the auth layer
//! verified, `X-Forwarded-*`, and the route's injected headers. Bodies stream
//! both ways frame by frame; an upgrade the route lists (`websocket` unless
//! it says otherwise, see [`crate::upgrade`]) is bridged byte for byte after
//! the upstream's `101`, any other is forwarded as a plain request. A
//! request body over `max_body_bytes` is refused with `413`, by its
//! `Content-Length` before anything is sent, or once the streamed body goes
//! over it. Failures answer `502`/`504` with generic bodies. Each answer
//! carries its [`Verdict`].

use std::convert::Infallible;
use std::error::Error as StdError;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use http::header::{self, HeaderMap, HeaderName, HeaderValue};
use http::{Request, Response, StatusCode, Version};
use http_body_util::{LengthLimitError, Limited};
use hyper_util::rt::TokioIo;
use meingpt_auth::MeinGptUser;
use tower::Service;

use crate::admission::{Refusal, TrustedProxies, remove_original_request_headers};
use crate::answer::{Body, plain, refused};
use crate::embed::SessionExpiry;
use crate::identity;
use crate::metrics::Metrics;
use crate::outcome::{UpstreamFailure, Verdict};
use crate::routes::Route;
use crate::server::ClientInfo;
use crate::upgrade;

pub(crate) use crate::upstream::UpstreamClient;

const X_FORWARDED_FOR: HeaderName = HeaderName::from_static("x-forwarded-for");
const X_FORWARDED_PROTO: HeaderName = HeaderName::from_static("x-forwarded-proto");
const X_FORWARDED_HOST: HeaderName = HeaderName::from_static("x-forwarded-host");
/// Forwarding headers an upstream gets only from a trusted proxy (and never
/// set by the gateway itself).
const FORWARDED_BY_PROXIES: [HeaderName; 4] = [
    header::FORWARDED,
    HeaderName::from_static("x-real-ip"),
    HeaderName::from_static("x-forwarded-port"),
    HeaderName::from_static("x-forwarded-prefix"),
];

/// A serving thread's upstream client, with the connect timeout applied.
pub(crate) fn upstream_client(connect_timeout: Duration) -> UpstreamClient {
    UpstreamClient::new(connect_timeout)
}

/// Forwards requests to one route's upstream. Cheap to clone.
#[derive(Clone)]
pub(crate) struct Proxy {
    forwarder: Arc<Forwarder>,
}

/// What forwarding one route's requests takes.
struct Forwarder {
    route: Route,
    client: UpstreamClient,
    response_timeout: Duration,
    max_body_bytes: usize,
    metrics: Arc<Metrics>,
    trusted_proxies: TrustedProxies,
    /// Headers removed from requests when spelled with `_` for `-`: those
    /// the gateway sets, vouches for or removes.
    respelled: Box<[HeaderName]>,
}

impl std::fmt::Debug for Proxy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Proxy")
            .field("prefix", &self.forwarder.route.prefix)
            .field("upstream", &self.forwarder.route.upstream.to_string())
            .finish()
    }
}

impl Proxy {
    /// A proxy for `route`; the forwarding headers of `trusted_proxies`
    /// reach the upstream, anyone else's are replaced or removed.
    pub(crate) fn new(
        route: Route,
        client: UpstreamClient,
        response_timeout: Duration,
        max_body_bytes: usize,
        metrics: Arc<Metrics>,
        trusted_proxies: TrustedProxies,
    ) -> Self {
        let respelled = identity::IDENTITY_HEADERS
            .iter()
            .chain([
                &identity::TOKEN,
                &X_FORWARDED_FOR,
                &X_FORWARDED_PROTO,
                &X_FORWARDED_HOST,
            ])
            .chain(FORWARDED_BY_PROXIES.iter())
            .chain(route.inject_headers.iter().map(|(name, _)| name))
            .filter(|name| name.as_str().contains('-'))
            .cloned()
            .collect();
        Self {
            forwarder: Arc::new(Forwarder {
                route,
                client,
                response_timeout,
                max_body_bytes,
                metrics,
                trusted_proxies,
                respelled,
            }),
        }
    }
}

impl Service<Request<Body>> for Proxy {
    type Response = Response<Body>;
    type Error = Infallible;
    type Future = Pin<Box<dyn Future<Output = Result<Response<Body>, Infallible>> + Send>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: Request<Body>) -> Self::Future {
        let forwarder = self.forwarder.clone();
        Box::pin(async move { Ok(forwarder.forward(request).await) })
    }
}

impl Forwarder {
    async fn forward(&self, mut request: Request<Body>) -> Response<Body> {
        let route = &self.route;
        let user = request.extensions_mut().remove::<MeinGptUser>();
        let verdict = if user.is_some() {
            Verdict::Allowed
        } else {
            Verdict::Public
        };
        let info = request.extensions().get::<ClientInfo>().copied();
        // A WebSocket opened with an embed route's session ends with it.
        let session_ends = request.extensions().get::<SessionExpiry>().copied();
        let upgrade = upgrade::offered(request.headers()).and_then(|offer| {
            let allowed = route.upgrades.allows(offer);
            if !allowed {
                tracing::debug!(
                    target: "meingpt_gateway::proxy",
                    route = %route.prefix,
                    "upgrade not listed for the route; forwarded as a plain request"
                );
            }
            allowed.then(|| offer.clone())
        });
        let client_upgrade = upgrade.as_ref().map(|_| hyper::upgrade::on(&mut request));

        let (parts, body) = request.into_parts();
        let uri = route
            .upstream_path(parts.uri.path())
            .and_then(|path| route.upstream.uri(path, parts.uri.query()).ok());
        let Some(uri) = uri else {
            return refused(Refusal::EncodedPrefix);
        };
        let declared = parts
            .headers
            .get(header::CONTENT_LENGTH)
            .and_then(|value| value.to_str().ok()?.parse::<u64>().ok());
        if declared.is_some_and(|length| length > self.max_body_bytes as u64) {
            return body_too_large();
        }
        // Cut where the limit is; the client's request then fails with
        // `LengthLimitError` in its causes.
        let body = Body::new(Limited::new(body, self.max_body_bytes));
        let mut headers = parts.headers;
        let host = headers.get(header::HOST).cloned().or_else(|| {
            parts
                .uri
                .authority()
                .and_then(|a| HeaderValue::from_str(a.as_str()).ok())
        });
        identity::remove_hop_by_hop(&mut headers);
        identity::remove_identity(&mut headers);
        remove_original_request_headers(&mut headers);
        identity::remove_underscore_spellings(&mut headers, &self.respelled);
        if !route.forward_token {
            identity::remove_token(&mut headers);
        }
        headers.remove(header::HOST);
        // An embed route passes the browser's Host (or HTTP/2 authority):
        // the app is served to the browser at that origin, and apps compare
        // Origin with Host (a WebSocket's, a form's) as if no proxy were in
        // between.
        if route.embed.is_some()
            && let Some(host) = &host
        {
            headers.insert(header::HOST, host.clone());
        }
        if let Some(user) = &user {
            identity::insert_identity(&mut headers, user);
        }
        let trusted = info.is_some_and(|info| self.trusted_proxies.contains(info.peer.ip()));
        set_forwarded(&mut headers, info, host, trusted);
        for (name, value) in &route.inject_headers {
            headers.insert(name.clone(), value.clone());
        }
        if let Some(protocol) = &upgrade {
            headers.insert(header::CONNECTION, HeaderValue::from_static("upgrade"));
            headers.insert(header::UPGRADE, protocol.clone());
        }

        let mut upstream_request = Request::new(body);
        *upstream_request.method_mut() = parts.method;
        *upstream_request.uri_mut() = uri;
        *upstream_request.version_mut() = Version::HTTP_11;
        *upstream_request.headers_mut() = headers;

        let started = Instant::now();
        let outcome =
            tokio::time::timeout(self.response_timeout, self.client.request(upstream_request))
                .await;
        let mut response = match outcome {
            Ok(Ok(response)) => response,
            Ok(Err(error)) if body_limit_exceeded(&error) => return body_too_large(),
            Ok(Err(error)) => {
                let failure = if error.is_connect() {
                    UpstreamFailure::Connect
                } else {
                    UpstreamFailure::Other
                };
                self.metrics.upstream_failure(failure);
                tracing::warn!(
                    target: "meingpt_gateway::proxy",
                    route = %route.prefix,
                    upstream = %route.upstream,
                    error = %ErrorChain(&error),
                    "upstream request failed"
                );
                return Verdict::UpstreamFailed(failure)
                    .mark(plain(StatusCode::BAD_GATEWAY, "bad gateway\n"));
            }
            Err(_) => {
                self.metrics.upstream_failure(UpstreamFailure::Timeout);
                tracing::warn!(
                    target: "meingpt_gateway::proxy",
                    route = %route.prefix,
                    upstream = %route.upstream,
                    timeout_ms = self.response_timeout.as_millis() as u64,
                    "upstream did not answer in time"
                );
                return Verdict::UpstreamFailed(UpstreamFailure::Timeout)
                    .mark(plain(StatusCode::GATEWAY_TIMEOUT, "gateway timeout\n"));
            }
        };
        self.metrics.upstream_latency(started.elapsed());

        let switching = response.status() == StatusCode::SWITCHING_PROTOCOLS;
        if switching {
            let answered = response.headers().get(header::UPGRADE);
            match (&upgrade, client_upgrade) {
                (Some(offer), Some(client_upgrade)) if upgrade::answers(offer, answered) => {
                    let upstream_upgrade = hyper::upgrade::on(&mut response);
                    tokio::spawn(tunnel(client_upgrade, upstream_upgrade, session_ends));
                }
                _ => {
                    // A switch nobody asked for: the client would take the
                    // upstream's next bytes for another protocol.
                    self.metrics.upstream_failure(UpstreamFailure::Other);
                    tracing::warn!(
                        target: "meingpt_gateway::proxy",
                        route = %route.prefix,
                        upstream = %route.upstream,
                        "upstream switched protocols without being asked to"
                    );
                    return Verdict::UpstreamFailed(UpstreamFailure::Other)
                        .mark(plain(StatusCode::BAD_GATEWAY, "bad gateway\n"));
                }
            }
        }
        let (mut parts, body) = response.into_parts();
        let upgrade_answer = parts.headers.get(header::UPGRADE).cloned();
        identity::remove_hop_by_hop(&mut parts.headers);
        if switching && let Some(protocol) = upgrade_answer {
            parts
                .headers
                .insert(header::CONNECTION, HeaderValue::from_static("upgrade"));
            parts.headers.insert(header::UPGRADE, protocol);
        }
        parts.extensions = http::Extensions::new();
        parts.extensions.insert(verdict);
        let metrics = self.metrics.clone();
        let body = http_body_util::BodyExt::map_err(body, move |error| {
            metrics.upstream_failure(UpstreamFailure::Broken);
            tracing::warn!(target: "meingpt_gateway::proxy", %error, "upstream response broke off");
            error
        });
        Response::from_parts(parts, Body::new(body))
    }
}

/// The forwarding headers. From a `trusted` proxy: the peer is appended to
/// its `X-Forwarded-For`, its `X-Forwarded-Proto` and `-Host` are kept (set
/// when it sent none), and its `Forwarded`, `X-Real-IP`, `X-Forwarded-Port`
/// and `-Prefix` pass. From anyone else: `X-Forwarded-For` is the peer,
/// `-Proto` and `-Host` are the gateway's view, and the others are removed.
fn set_forwarded(
    headers: &mut HeaderMap,
    info: Option<ClientInfo>,
    host: Option<HeaderValue>,
    trusted: bool,
) {
    if !trusted {
        let found: Vec<HeaderName> = headers
            .keys()
            .filter(|name| FORWARDED_BY_PROXIES.contains(name))
            .cloned()
            .collect();
        for name in found {
            headers.remove(name);
        }
    }
    if let Some(info) = info {
        let peer = address_text(info.peer.ip().to_canonical());
        let earlier = headers
            .get_all(&X_FORWARDED_FOR)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .map(str::trim)
            .filter(|v| !v.is_empty())
            .collect::<Vec<_>>();
        let value = if trusted && !earlier.is_empty() {
            format!("{}, {peer}", earlier.join(", "))
        } else {
            peer
        };
        headers.remove(&X_FORWARDED_FOR);
        if let Ok(value) = HeaderValue::try_from(value) {
            headers.insert(X_FORWARDED_FOR, value);
        }
        if !trusted || !headers.contains_key(&X_FORWARDED_PROTO) {
            let proto = if info.tls { "https" } else { "http" };
            headers.insert(X_FORWARDED_PROTO, HeaderValue::from_static(proto));
        }
    }
    if trusted && headers.contains_key(&X_FORWARDED_HOST) {
        return;
    }
    match host {
        Some(host) => {
            headers.insert(X_FORWARDED_HOST, host);
        }
        None => {
            headers.remove(X_FORWARDED_HOST);
        }
    }
}

/// An address as `Display` writes it; IPv4 (nearly every peer) without the
/// formatting machinery.
fn address_text(ip: std::net::IpAddr) -> String {
    let std::net::IpAddr::V4(v4) = ip else {
        return ip.to_string();
    };
    let mut text = String::with_capacity(15);
    for (index, octet) in v4.octets().into_iter().enumerate() {
        if index > 0 {
            text.push('.');
        }
        if octet >= 100 {
            text.push(char::from(b'0' + octet / 100));
        }
        if octet >= 10 {
            text.push(char::from(b'0' + octet / 10 % 10));
        }
        text.push(char::from(b'0' + octet % 10));
    }
    text
}

/// Copies bytes both ways between the upgraded client and upstream
/// connections; until the session ends, if it was opened with one.
async fn tunnel(
    client: hyper::upgrade::OnUpgrade,
    upstream: hyper::upgrade::OnUpgrade,
    session_ends: Option<SessionExpiry>,
) {
    let (client, upstream) = tokio::join!(client, upstream);
    let (Ok(client), Ok(upstream)) = (client, upstream) else {
        tracing::debug!(target: "meingpt_gateway::proxy", "upgrade did not complete");
        return;
    };
    let mut client = TokioIo::new(client);
    let mut upstream = TokioIo::new(upstream);
    if let Some(ends) = session_ends {
        let closes_at = tokio::time::Instant::now() + ends.remaining();
        return crate::embed::websocket::tunnel_until(client, upstream, closes_at).await;
    }
    if let Err(error) = tokio::io::copy_bidirectional(&mut client, &mut upstream).await {
        tracing::debug!(target: "meingpt_gateway::proxy", %error, "upgraded connection ended");
    }
}

/// The `413` for a request body over `max_body_bytes`.
fn body_too_large() -> Response<Body> {
    Verdict::BodyTooLarge.mark(plain(StatusCode::PAYLOAD_TOO_LARGE, "payload too large\n"))
}

/// Whether the request body failed because it went over the size limit.
fn body_limit_exceeded(error: &(dyn StdError + 'static)) -> bool {
    let mut current = Some(error);
    while let Some(error) = current {
        if error.is::<LengthLimitError>() {
            return true;
        }
        current = error.source();
    }
    false
}

/// An error and its causes on one line (no request data is in them).
struct ErrorChain<'e>(&'e (dyn StdError + 'static));

impl std::fmt::Display for ErrorChain<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.0)?;
        let mut current = self.0.source();
        while let Some(error) = current {
            write!(f, ": {error}")?;
            current = error.source();
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn addresses_read_as_display_writes_them() {
        for ip in [
            "0.0.0.0",
            "127.0.0.1",
            "10.20.100.255",
            "192.168.9.99",
            "::1",
            "2001:db8::7",
        ] {
            let ip: std::net::IpAddr = ip.parse().unwrap();
            assert_eq!(super::address_text(ip), ip.to_string());
        }
    }
}

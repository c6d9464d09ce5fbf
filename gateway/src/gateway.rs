//! The gateway service: `/healthz`, `/readyz`, the protected resources'
//! metadata, the forward-auth endpoint, and the routes, each a Tower stack of the crate's layers (auth, policy
//! guard, frame-ancestors) around a [`Proxy`].

use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context, Poll};

use http::{HeaderMap, Method, Request, Response, StatusCode};
use meingpt_auth::{AuthBody, AuthError, MeinGptAuth};
use tower::util::BoxCloneSyncService;
use tower::{Service, ServiceBuilder, ServiceExt};

use crate::admission::{OriginalRequest, Refusal, RequestPath, TrustedProxies};
use crate::config::ForwardAuthEndpoint;
use crate::identity;
use crate::metrics::{Metrics, Mode, Verdict};
use crate::proxy::{Body, ClientInfo, Proxy, UpstreamClient, plain};
use crate::resource::{self, ResourceAudienceLayer, WellKnown, scope_guard};
use crate::routes::{self, Route};

type RouteService = BoxCloneSyncService<Request<Body>, Response<Body>, Infallible>;

/// Whether every issuer's keys have been loaded once.
#[derive(Debug, Clone, Default)]
pub struct Readiness(Arc<AtomicBool>);

impl Readiness {
    /// Marks the keys as loaded.
    pub fn set_ready(&self) {
        self.0.store(true, Ordering::Release);
    }

    /// Whether the keys are loaded.
    pub fn is_ready(&self) -> bool {
        self.0.load(Ordering::Acquire)
    }
}

/// What the access log and the metrics learn about an answered request.
#[derive(Debug, Clone)]
pub struct Outcome {
    /// Which job the request was.
    pub mode: Mode,
    /// The matched route's prefix.
    pub route: Option<Arc<str>>,
    /// The decision.
    pub verdict: Verdict,
    /// For forward auth, the method of the request it was about.
    pub original_method: Option<Method>,
}

/// Dispatches requests to the endpoints and routes. Cheap to clone.
#[derive(Clone)]
pub struct Gateway {
    shared: Arc<Shared>,
}

impl std::fmt::Debug for Gateway {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Gateway")
            .field("routes", &self.shared.routes.len())
            .field("forward_auth", &self.shared.forward_auth)
            .finish()
    }
}

struct Shared {
    auth: MeinGptAuth,
    routes: Vec<Route>,
    prefixes: Vec<Arc<str>>,
    services: Vec<RouteService>,
    forward_auth: ForwardAuthEndpoint,
    trusted_proxies: TrustedProxies,
    readiness: Readiness,
    well_known: WellKnown,
    /// The meinGPT stand-in (served only by builds with `dev-issuer`).
    #[cfg_attr(not(feature = "dev-issuer"), allow(dead_code))]
    stand_in: Option<crate::embed::StandIn>,
}

/// What a [`Gateway`] is made of.
pub struct GatewayParts {
    /// The authenticator.
    pub auth: MeinGptAuth,
    /// The routes.
    pub routes: Vec<Route>,
    /// The forward-auth endpoint.
    pub forward_auth: ForwardAuthEndpoint,
    /// Who may ask forward auth and set forwarding headers.
    pub trusted_proxies: TrustedProxies,
    /// The upstream client shared by all routes.
    pub client: UpstreamClient,
    /// The upstream response-header timeout.
    pub response_timeout: std::time::Duration,
    /// The counters.
    pub metrics: Arc<Metrics>,
    /// The key-loading state `/readyz` reports.
    pub readiness: Readiness,
    /// The meinGPT stand-in (development issuer only).
    pub stand_in: Option<crate::embed::StandIn>,
}

impl Gateway {
    /// Builds every route's stack.
    pub fn new(parts: GatewayParts) -> Self {
        let services = parts
            .routes
            .iter()
            .map(|route| {
                let proxy = Proxy::new(
                    route.clone(),
                    parts.client.clone(),
                    parts.response_timeout,
                    parts.metrics.clone(),
                    parts.trusted_proxies.clone(),
                );
                route_stack(&parts.auth, route, proxy)
            })
            .collect();
        let prefixes = parts
            .routes
            .iter()
            .map(|r| Arc::from(r.prefix.as_str()))
            .collect();
        let well_known = WellKnown::new(
            parts.auth.resource_metadata().into_iter().chain(
                parts
                    .routes
                    .iter()
                    .filter_map(|route| route.protected_resource.as_ref()),
            ),
        );
        Self {
            shared: Arc::new(Shared {
                auth: parts.auth,
                routes: parts.routes,
                prefixes,
                services,
                forward_auth: parts.forward_auth,
                trusted_proxies: parts.trusted_proxies,
                readiness: parts.readiness,
                well_known,
                stand_in: parts.stand_in,
            }),
        }
    }
}

/// One route's stack: `auth.layer()` and the policy guard (unless public),
/// for a protected resource the audience binding and the scope guard
/// between them, the frame-ancestors policy (when configured), the proxy.
fn route_stack(auth: &MeinGptAuth, route: &Route, proxy: Proxy) -> RouteService {
    if let Some(options) = &route.embed {
        return crate::embed::route::stack(auth, route, options, proxy);
    }
    let framed = ServiceBuilder::new()
        .option_layer(route.frame_ancestors.clone())
        .map_response(|response: Response<Body>| response.map(Body::new))
        .service(proxy);
    if route.policy.is_public() {
        return BoxCloneSyncService::new(framed);
    }
    // The crate's layers wrap their inner body in `AuthBody`; each is boxed
    // back into the proxy's `Body` so that every route has one type.
    let policed = if route.policy.is_restricted() {
        BoxCloneSyncService::new(
            ServiceBuilder::new()
                .map_response(|response: Response<AuthBody<Body>>| response.map(Body::new))
                .layer(route.policy.guard())
                .service(framed),
        )
    } else {
        BoxCloneSyncService::new(framed)
    };
    let Some(metadata) = &route.protected_resource else {
        let guarded = ServiceBuilder::new()
            .map_response(|response: Response<AuthBody<Body>>| response.map(Body::new))
            .layer(auth.layer())
            .service(policed);
        return BoxCloneSyncService::new(guarded);
    };
    // The challenges name the route's metadata; the scope guard's `403`
    // names the scopes too.
    let scoped = match scope_guard(metadata) {
        Some(guard) => BoxCloneSyncService::new(
            ServiceBuilder::new()
                .map_response(|response: Response<AuthBody<Body>>| response.map(Body::new))
                .layer(guard)
                .service(policed),
        ),
        None => policed,
    };
    let guarded = ServiceBuilder::new()
        .map_response(|response: Response<AuthBody<Body>>| response.map(Body::new))
        .layer(auth.layer().resource_metadata(metadata.clone()))
        .layer(ResourceAudienceLayer::new(metadata.clone(), auth.realm()))
        .service(scoped);
    BoxCloneSyncService::new(guarded)
}

impl Service<Request<Body>> for Gateway {
    type Response = Response<Body>;
    type Error = Infallible;
    type Future = Pin<Box<dyn Future<Output = Result<Response<Body>, Infallible>> + Send>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: Request<Body>) -> Self::Future {
        let shared = self.shared.clone();
        Box::pin(async move { Ok(shared.dispatch(request).await) })
    }
}

impl Shared {
    async fn dispatch(&self, request: Request<Body>) -> Response<Body> {
        let path = request.uri().path();
        if path == "/healthz" {
            return endpoint(plain(StatusCode::OK, "ok"));
        }
        if path == "/readyz" {
            return endpoint(if self.readiness.is_ready() {
                plain(StatusCode::OK, "ready")
            } else {
                plain(StatusCode::SERVICE_UNAVAILABLE, "not ready")
            });
        }
        if let Some(metadata) = self.well_known.find(path) {
            // Public, whatever the routes say: a client reads it before it
            // has a token.
            return endpoint(metadata.answer(request.method()).map(Body::from));
        }
        #[cfg(feature = "dev-issuer")]
        if let Some(stand_in) = &self.stand_in
            && crate::embed::StandIn::serves(path)
        {
            let answer = match stand_in.clone().oneshot(request).await {
                Ok(answer) => answer.map(Body::from),
                Err(never) => match never {},
            };
            return endpoint(answer);
        }
        if let Some(suffix) = self.forward_auth_suffix(path) {
            let peer = request
                .extensions()
                .get::<ClientInfo>()
                .map(|info| info.peer.ip());
            if !peer.is_some_and(|peer| self.trusted_proxies.contains(peer)) {
                tracing::warn!(
                    target: "meingpt_gateway::forward_auth",
                    "forward auth refused to a peer outside trusted_proxies"
                );
                return with_outcome(
                    plain(
                        StatusCode::FORBIDDEN,
                        "forward auth answers trusted proxies only\n",
                    ),
                    Mode::ForwardAuth,
                    None,
                    Verdict::Forbidden,
                );
            }
            return self.forward_auth(request.headers(), suffix).await;
        }
        let chosen = RequestPath::parse(path)
            .and_then(|path| routes::route_for(&self.routes, &path))
            .map(|found| found.map(|(index, _)| index));
        let index = match chosen {
            Ok(Some(index)) => index,
            Ok(None) => {
                return with_outcome(
                    plain(StatusCode::NOT_FOUND, "not found\n"),
                    Mode::Proxy,
                    None,
                    Verdict::NoRoute,
                );
            }
            Err(refusal) => return refused(refusal, Mode::Proxy),
        };
        // A refusal answers before the request's body is read; over HTTP/1.1
        // the connection then closes, and says so (see below).
        let unread_body = request.version() < http::Version::HTTP_2
            && !http_body::Body::is_end_stream(request.body());
        let service = self.services[index].clone();
        let mut response = match service.oneshot(request).await {
            Ok(response) => response,
            Err(never) => match never {},
        };
        if unread_body && response.extensions().get::<AuthError>().is_some() {
            // hyper closes a connection whose request body was left unread
            // once the response is written; without `Connection: close` a
            // client (an MCP client, whose first POST is refused before it
            // signs in) reuses it and fails with "server disconnected".
            response.headers_mut().insert(
                http::header::CONNECTION,
                http::HeaderValue::from_static("close"),
            );
        }
        let verdict = response
            .extensions()
            .get::<Verdict>()
            .copied()
            .unwrap_or_else(|| Verdict::from_rejection(response.status()));
        with_outcome(
            response,
            Mode::Proxy,
            Some(self.prefixes[index].clone()),
            verdict,
        )
    }

    /// `Some(None)` for the endpoint itself, `Some(Some(path))` for
    /// `{endpoint}/{original path}` (Envoy's `ext_authz` path prefix).
    fn forward_auth_suffix<'p>(&self, path: &'p str) -> Option<Option<&'p str>> {
        let rest = path.strip_prefix(self.forward_auth.path.as_str())?;
        if rest.is_empty() {
            Some(None)
        } else if rest.starts_with('/') {
            Some(Some(rest))
        } else {
            None
        }
    }

    /// The forward-auth answer: `200` with the identity headers, or the
    /// crate's rejection, or `400` when the original request is not clear
    /// ([`OriginalRequest::read`], [`RequestPath::parse`], [`routes::route_for`]).
    async fn forward_auth(&self, headers: &HeaderMap, suffix: Option<&str>) -> Response<Body> {
        let original = match OriginalRequest::read(headers, suffix, &self.forward_auth.headers) {
            Ok(original) => original,
            Err(refusal) => return refused(refusal, Mode::ForwardAuth),
        };
        let matched = match original.path {
            Some(path) => {
                match RequestPath::parse(path)
                    .and_then(|path| routes::route_for(&self.routes, &path))
                {
                    Ok(matched) => matched,
                    Err(refusal) => return refused(refusal, Mode::ForwardAuth),
                }
            }
            // Without the original URI no route's policy can be chosen.
            None if !self.routes.is_empty() => {
                return refused(Refusal::MissingOriginalUri, Mode::ForwardAuth);
            }
            None => None,
        };
        let method = original.method;
        let answer = |response, route, verdict| {
            let mut response = with_outcome(response, Mode::ForwardAuth, route, verdict);
            if let Some(outcome) = response.extensions_mut().get_mut::<Outcome>() {
                outcome.original_method = method.clone();
            }
            response
        };
        let route = matched.map(|(index, _)| self.prefixes[index].clone());
        let policy = matched.map(|(_, route)| &route.policy);
        if policy.is_some_and(|p| p.is_public()) {
            return answer(empty_ok(), route, Verdict::Public);
        }
        let resource = matched.and_then(|(_, route)| route.protected_resource.as_ref());
        // A protected resource's refusal names its scopes; the policy's not.
        let mut scope_refusal = false;
        let error = match self.auth.authenticate(headers).await {
            Ok(Some(user)) => {
                match resource.and_then(|metadata| resource::refusal(metadata, &user)) {
                    Some(error) => {
                        scope_refusal = matches!(error, AuthError::InsufficientScope);
                        error
                    }
                    None if policy.is_none_or(|p| p.admits(&user)) => {
                        let mut response = empty_ok();
                        identity::insert_identity(response.headers_mut(), &user);
                        return answer(response, route, Verdict::Allowed);
                    }
                    None => AuthError::InsufficientScope,
                }
            }
            Ok(None) => AuthError::MissingToken,
            Err(error) => error,
        };
        let response: Response<Body> = match resource {
            Some(metadata) => resource::reject(metadata, self.auth.realm(), &error, scope_refusal),
            None => self.auth.reject(&error),
        };
        let verdict = Verdict::from_rejection(response.status());
        answer(response, route, verdict)
    }
}

/// The `400` for a request the gateway cannot decide on.
fn refused(refusal: Refusal, mode: Mode) -> Response<Body> {
    let mut response = plain(StatusCode::BAD_REQUEST, "");
    *response.body_mut() = Body::from(format!("bad request: {refusal}\n"));
    response.headers_mut().insert(
        http::header::CACHE_CONTROL,
        http::HeaderValue::from_static("no-store"),
    );
    with_outcome(response, mode, None, Verdict::InvalidRequest)
}

fn empty_ok() -> Response<Body> {
    let mut response = Response::new(Body::empty());
    response.headers_mut().insert(
        http::header::CACHE_CONTROL,
        http::HeaderValue::from_static("no-store"),
    );
    response
}

fn endpoint(response: Response<Body>) -> Response<Body> {
    with_outcome(response, Mode::Endpoint, None, Verdict::Endpoint)
}

fn with_outcome(
    mut response: Response<Body>,
    mode: Mode,
    route: Option<Arc<str>>,
    verdict: Verdict,
) -> Response<Body> {
    response.extensions_mut().insert(Outcome {
        mode,
        route,
        verdict,
        original_method: None,
    });
    response
}

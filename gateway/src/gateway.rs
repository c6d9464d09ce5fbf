//! The gateway service: it tells a request's job apart (`/healthz`,
//! `/readyz`, the protected resources' metadata, the meinGPT stand-in, the
//! forward-auth endpoint, or a route to proxy), checks its
//! `Host`, and hands it to the endpoint or to the route's stack. It decides
//! nothing itself: each route's stacks are built by [`crate::decision`],
//! the proxy's here and forward auth's in [`crate::forward_auth`].
//!
//! Every answer leaves with a [`Dispatched`] (job, route) beside its
//! verdict (see [`crate::outcome`]).

use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use http::{Request, Response, StatusCode};
use meingpt_auth::MeinGptAuth;
use tower::util::BoxCloneSyncService;
use tower::{Service, ServiceBuilder, ServiceExt};

use crate::admission::{RequestPath, TrustedProxies, check_host};
use crate::answer::{Body, plain, refused};
use crate::config::ForwardAuthEndpoint;
use crate::decision::decision;
use crate::embed::StandIn;
use crate::embed_route;
use crate::forward_auth::ForwardAuth;
use crate::metrics::Metrics;
use crate::outcome::{Dispatched, Mode, Verdict};
use crate::proxy::{Proxy, upstream_client};
use crate::resource::WellKnown;
use crate::routes::{self, Route};

/// A route's proxy stack: its decision around the frame-ancestors policy
/// and the [`Proxy`].
type ProxyStack = BoxCloneSyncService<Request<Body>, Response<Body>, Infallible>;

/// Whether every issuer's keys have been loaded once.
#[derive(Debug, Clone, Default)]
pub(crate) struct Readiness(Arc<AtomicBool>);

impl Readiness {
    /// Marks the keys as loaded.
    pub(crate) fn set_ready(&self) {
        self.0.store(true, Ordering::Release);
    }

    /// Whether the keys are loaded.
    pub(crate) fn is_ready(&self) -> bool {
        self.0.load(Ordering::Acquire)
    }
}

/// What a [`Gateway`] is made of; each serving thread builds its own
/// gateway from it ([`Gateway::new`]), with its own upstream connections.
#[derive(Clone)]
pub(crate) struct GatewayParts {
    /// The authenticator.
    pub(crate) auth: MeinGptAuth,
    /// The routes.
    pub(crate) routes: Vec<Route>,
    /// The forward-auth endpoint.
    pub(crate) forward_auth: ForwardAuthEndpoint,
    /// Who may ask forward auth and set forwarding headers.
    pub(crate) trusted_proxies: TrustedProxies,
    /// The upstream connect timeout.
    pub(crate) connect_timeout: Duration,
    /// The upstream response-header timeout.
    pub(crate) response_timeout: Duration,
    /// The request body limit.
    pub(crate) max_body_bytes: usize,
    /// The counters.
    pub(crate) metrics: Arc<Metrics>,
    /// The key-loading state `/readyz` reports.
    pub(crate) readiness: Readiness,
    /// The meinGPT stand-in (development issuer only).
    pub(crate) stand_in: Option<StandIn>,
}

/// Dispatches requests to the endpoints and routes. Cheap to clone.
#[derive(Clone)]
pub(crate) struct Gateway {
    dispatch: Arc<Dispatch>,
}

impl std::fmt::Debug for Gateway {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Gateway")
            .field("routes", &self.dispatch.routes.len())
            .field("forward_auth", &self.dispatch.forward_auth)
            .finish()
    }
}

/// Where requests go: the endpoints, forward auth, each route's proxy.
struct Dispatch {
    routes: Vec<Route>,
    /// The routes' prefixes, for the log.
    prefixes: Vec<Arc<str>>,
    /// One per route, in the routes' order.
    proxies: Vec<ProxyStack>,
    forward_auth: ForwardAuth,
    readiness: Readiness,
    /// The protected resources' metadata documents, by path.
    well_known: WellKnown,
    stand_in: Option<StandIn>,
}

impl Gateway {
    /// Builds every route's stacks, with an upstream client of its own.
    pub(crate) fn new(parts: &GatewayParts) -> Self {
        let client = upstream_client(parts.connect_timeout);
        let auth = parts.auth.layer();
        let proxies = parts
            .routes
            .iter()
            .map(|route| {
                let proxy = Proxy::new(
                    route.clone(),
                    client.clone(),
                    parts.response_timeout,
                    parts.max_body_bytes,
                    parts.metrics.clone(),
                    parts.trusted_proxies.clone(),
                );
                if let Some(options) = &route.embed {
                    return embed_route::stack(&parts.auth, route, options, proxy);
                }
                let framed = ServiceBuilder::new()
                    .option_layer(route.frame_ancestors.clone())
                    .service(proxy);
                BoxCloneSyncService::new(decision(
                    &auth,
                    parts.auth.realm(),
                    &route.policy,
                    route.protected_resource.as_ref(),
                    framed,
                ))
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
        let forward_auth = ForwardAuth::new(
            &parts.auth,
            &parts.routes,
            parts.forward_auth.clone(),
            parts.trusted_proxies.clone(),
        );
        Self {
            dispatch: Arc::new(Dispatch {
                routes: parts.routes.clone(),
                prefixes,
                proxies,
                forward_auth,
                readiness: parts.readiness.clone(),
                well_known,
                stand_in: parts.stand_in.clone(),
            }),
        }
    }
}

impl Service<Request<Body>> for Gateway {
    type Response = Response<Body>;
    type Error = Infallible;
    type Future = Pin<Box<dyn Future<Output = Result<Response<Body>, Infallible>> + Send>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: Request<Body>) -> Self::Future {
        let dispatch = self.dispatch.clone();
        Box::pin(async move { Ok(dispatch.answer(request).await) })
    }
}

impl Dispatch {
    async fn answer(&self, request: Request<Body>) -> Response<Body> {
        let path = request.uri().path();
        let endpoint = path == "/healthz"
            || path == "/readyz"
            || self.well_known.find(path).is_some()
            || self.stands_in(path);
        let mode = if endpoint {
            Mode::Endpoint
        } else if self.forward_auth.is_asked(path) {
            Mode::ForwardAuth
        } else {
            Mode::Proxy
        };
        if let Err(bad) = check_host(&request) {
            tracing::debug!(
                target: "meingpt_gateway::host",
                reason = bad.description(),
                "request refused"
            );
            return Dispatched::new(mode, None).mark(refused(bad.into()));
        }
        match mode {
            Mode::Endpoint => {
                let response = Verdict::Endpoint.mark(self.endpoint(request).await);
                Dispatched::new(mode, None).mark(response)
            }
            Mode::ForwardAuth => {
                self.forward_auth
                    .answer(request, &self.routes, &self.prefixes)
                    .await
            }
            Mode::Proxy => self.proxy(request).await,
        }
    }

    /// Whether `path` is the meinGPT stand-in's.
    fn stands_in(&self, path: &str) -> bool {
        #[cfg(feature = "dev-issuer")]
        return self.stand_in.is_some() && StandIn::serves(path);
        #[cfg(not(feature = "dev-issuer"))]
        {
            let _ = path;
            false
        }
    }

    /// `/healthz`, `/readyz`, the protected resources' metadata and the
    /// meinGPT stand-in.
    async fn endpoint(&self, request: Request<Body>) -> Response<Body> {
        let path = request.uri().path();
        if let Some(metadata) = self.well_known.find(path) {
            // Public, whatever the routes say: a client reads it before it
            // has a token.
            return metadata.answer(request.method()).map(Body::from);
        }
        match path {
            "/healthz" => plain(StatusCode::OK, "ok"),
            "/readyz" if self.readiness.is_ready() => plain(StatusCode::OK, "ready"),
            "/readyz" => plain(StatusCode::SERVICE_UNAVAILABLE, "not ready"),
            _ => match self.stand_in.clone() {
                #[cfg(feature = "dev-issuer")]
                Some(stand_in) => match stand_in.oneshot(request).await {
                    Ok(answer) => answer.map(Body::from),
                    Err(never) => match never {},
                },
                #[cfg(not(feature = "dev-issuer"))]
                Some(never) => match never {},
                None => plain(StatusCode::NOT_FOUND, "not found\n"),
            },
        }
    }

    /// The answer of the route for the request's path, or `404`, or `400`
    /// for a path the gateway cannot decide on.
    async fn proxy(&self, request: Request<Body>) -> Response<Body> {
        let chosen = RequestPath::parse(request.uri().path())
            .and_then(|path| routes::route_for(&self.routes, &path))
            .map(|found| found.map(|(index, _)| index));
        let index = match chosen {
            Ok(Some(index)) => index,
            Ok(None) => {
                let response = plain(StatusCode::NOT_FOUND, "not found\n");
                return Dispatched::new(Mode::Proxy, None).mark(Verdict::NoRoute.mark(response));
            }
            Err(refusal) => return Dispatched::new(Mode::Proxy, None).mark(refused(refusal)),
        };
        // A refusal answers before the request's body is read; over HTTP/1.1
        // the connection then closes, and says so (see below).
        let unread_body = request.version() < http::Version::HTTP_2
            && !http_body::Body::is_end_stream(request.body());
        let mut response = match self.proxies[index].clone().oneshot(request).await {
            Ok(response) => response,
            Err(never) => match never {},
        };
        if unread_body && is_refusal(response.extensions()) {
            // hyper closes a connection whose request body was left unread
            // once the response is written; without `Connection: close` a
            // client (an MCP client, whose first POST is refused before it
            // signs in) reuses it and fails with "server disconnected".
            response.headers_mut().insert(
                http::header::CONNECTION,
                http::HeaderValue::from_static("close"),
            );
        }
        Dispatched::new(Mode::Proxy, Some(self.prefixes[index].clone())).mark(response)
    }
}

/// Whether an answer is not the upstream's: a refusal of the crate, one of
/// the gateway's own, or an upstream failure.
fn is_refusal(extensions: &http::Extensions) -> bool {
    !matches!(
        Verdict::of(extensions).0,
        Verdict::Allowed | Verdict::Public
    )
}

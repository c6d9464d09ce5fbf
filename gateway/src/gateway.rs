//! The gateway service: `/healthz`, `/readyz`, the forward-auth endpoint,
//! and the routes, each a Tower stack of the crate's layers (auth, policy
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

use crate::identity;
use crate::metrics::{Metrics, Mode, Verdict};
use crate::proxy::{Body, Proxy, UpstreamClient, plain};
use crate::routes::{self, Route, has_dot_segments};

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
            .field("forward_auth_path", &self.shared.forward_auth_path)
            .finish()
    }
}

struct Shared {
    auth: MeinGptAuth,
    routes: Vec<Route>,
    prefixes: Vec<Arc<str>>,
    services: Vec<RouteService>,
    forward_auth_path: String,
    readiness: Readiness,
}

/// What a [`Gateway`] is made of.
pub struct GatewayParts {
    /// The authenticator.
    pub auth: MeinGptAuth,
    /// The routes.
    pub routes: Vec<Route>,
    /// The forward-auth endpoint's path.
    pub forward_auth_path: String,
    /// The upstream client shared by all routes.
    pub client: UpstreamClient,
    /// The upstream response-header timeout.
    pub response_timeout: std::time::Duration,
    /// The counters.
    pub metrics: Arc<Metrics>,
    /// The key-loading state `/readyz` reports.
    pub readiness: Readiness,
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
                );
                route_stack(&parts.auth, route, proxy)
            })
            .collect();
        let prefixes = parts
            .routes
            .iter()
            .map(|r| Arc::from(r.prefix.as_str()))
            .collect();
        Self {
            shared: Arc::new(Shared {
                auth: parts.auth,
                routes: parts.routes,
                prefixes,
                services,
                forward_auth_path: parts.forward_auth_path,
                readiness: parts.readiness,
            }),
        }
    }
}

/// One route's stack: `auth.layer()` and the policy guard (unless public),
/// the frame-ancestors policy (when configured), the proxy.
fn route_stack(auth: &MeinGptAuth, route: &Route, proxy: Proxy) -> RouteService {
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
    let guarded = ServiceBuilder::new()
        .map_response(|response: Response<AuthBody<Body>>| response.map(Body::new))
        .layer(auth.layer())
        .service(policed);
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
        if let Some(rest) = self.forward_auth_suffix(path) {
            let rest = rest.map(str::to_owned);
            return self.forward_auth(request.headers(), rest.as_deref()).await;
        }
        if has_dot_segments(path) || routes::is_ambiguous(&self.routes, path) {
            return with_outcome(
                plain(StatusCode::BAD_REQUEST, "bad request path\n"),
                Mode::Proxy,
                None,
                Verdict::InvalidRequest,
            );
        }
        let Some((index, _)) = routes::find(&self.routes, path) else {
            return with_outcome(
                plain(StatusCode::NOT_FOUND, "not found\n"),
                Mode::Proxy,
                None,
                Verdict::NoRoute,
            );
        };
        let service = self.services[index].clone();
        let response = match service.oneshot(request).await {
            Ok(response) => response,
            Err(never) => match never {},
        };
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
        let rest = path.strip_prefix(self.forward_auth_path.as_str())?;
        if rest.is_empty() {
            Some(None)
        } else if rest.starts_with('/') {
            Some(Some(rest))
        } else {
            None
        }
    }

    /// The forward-auth answer: `200` with the identity headers, or the
    /// crate's rejection.
    async fn forward_auth(&self, headers: &HeaderMap, suffix: Option<&str>) -> Response<Body> {
        let original = original_path(headers).or(suffix);
        if original
            .is_some_and(|path| has_dot_segments(path) || routes::is_ambiguous(&self.routes, path))
        {
            return with_outcome(
                plain(StatusCode::BAD_REQUEST, "bad request path\n"),
                Mode::ForwardAuth,
                None,
                Verdict::InvalidRequest,
            );
        }
        let matched = original.and_then(|path| routes::find(&self.routes, path));
        let route = matched.map(|(index, _)| self.prefixes[index].clone());
        let policy = matched.map(|(_, route)| &route.policy);
        if policy.is_some_and(|p| p.is_public()) {
            return with_outcome(empty_ok(), Mode::ForwardAuth, route, Verdict::Public);
        }
        let error = match self.auth.authenticate(headers).await {
            Ok(Some(user)) if policy.is_none_or(|p| p.admits(&user)) => {
                let mut response = empty_ok();
                identity::insert_identity(response.headers_mut(), &user);
                return with_outcome(response, Mode::ForwardAuth, route, Verdict::Allowed);
            }
            Ok(Some(_)) => AuthError::InsufficientScope,
            Ok(None) => AuthError::MissingToken,
            Err(error) => error,
        };
        let response: Response<Body> = self.auth.reject(&error);
        let verdict = Verdict::from_rejection(response.status());
        with_outcome(response, Mode::ForwardAuth, route, verdict)
    }
}

/// The path of `X-Original-URI` or `X-Forwarded-Uri` (query removed; an
/// absolute URI is reduced to its path).
fn original_path(headers: &HeaderMap) -> Option<&str> {
    let value = ["x-original-uri", "x-forwarded-uri"]
        .iter()
        .find_map(|name| headers.get(*name))?
        .to_str()
        .ok()?;
    let without_query = value.split(['?', '#']).next().unwrap_or("");
    let path = match without_query.find("://") {
        Some(scheme_end) => {
            let after = &without_query[scheme_end + 3..];
            after.find('/').map_or("/", |slash| &after[slash..])
        }
        None => without_query,
    };
    if path.is_empty() {
        Some("/")
    } else {
        Some(path)
    }
}

/// The method of the original request (`X-Original-Method`,
/// `X-Forwarded-Method`), for the access log.
pub fn original_method(headers: &HeaderMap) -> Option<Method> {
    ["x-original-method", "x-forwarded-method"]
        .iter()
        .find_map(|name| headers.get(*name))
        .and_then(|value| Method::from_bytes(value.as_bytes()).ok())
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
    });
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(name: &'static str, value: &'static str) -> HeaderMap {
        let mut headers = HeaderMap::new();
        headers.insert(name, http::HeaderValue::from_static(value));
        headers
    }

    #[test]
    fn original_path_drops_query_and_origin() {
        assert_eq!(
            original_path(&headers("x-original-uri", "/a/b?token=x")),
            Some("/a/b")
        );
        assert_eq!(
            original_path(&headers("x-forwarded-uri", "https://h.example/a?b")),
            Some("/a")
        );
        assert_eq!(
            original_path(&headers("x-forwarded-uri", "https://h.example")),
            Some("/")
        );
        assert_eq!(original_path(&HeaderMap::new()), None);
    }
}

//! The forward-auth endpoint: nginx `auth_request`, Caddy `forward_auth`,
//! Traefik `ForwardAuth` and Envoy `ext_authz` ask whether a request may
//! pass.
//!
//! Forward auth is one more stack per route, not a second decision: the
//! route's [`decision`] (the crate's auth layer and the route's policy
//! guard) around [`Admitted`], which answers `200` with the identity
//! headers. The endpoint itself only finds the route: it answers trusted
//! proxies only, reads the original request ([`OriginalRequest`]), picks the
//! route for its path ([`RequestPath`], [`routes::route_for`]) and hands
//! the request to that route's stack. A path no route takes, or no original
//! path while no route is configured, gets the stack of any signed-in user.

use std::convert::Infallible;
use std::future::{Ready, ready};
use std::sync::Arc;
use std::task::{Context, Poll};

use http::header::{self, HeaderValue};
use http::{Method, Request, Response, StatusCode};
use meingpt_auth::{MeinGptAuth, MeinGptUser};
use tower::{Service, ServiceExt};

use crate::admission::{OriginalRequest, Refusal, RequestPath, TrustedProxies};
use crate::answer::{Body, plain, refused};
use crate::config::ForwardAuthEndpoint;
use crate::decision::{Decision, decision};
use crate::identity;
use crate::outcome::{Dispatched, Mode, Verdict};
use crate::routes::{self, Policy, Route};
use crate::server::ClientInfo;

/// A route's forward-auth stack: its decision around [`Admitted`].
type ForwardAuthStack = Decision<Admitted>;

/// The forward-auth endpoint with every route's stack. See the
/// [module docs](self).
pub(crate) struct ForwardAuth {
    endpoint: ForwardAuthEndpoint,
    trusted_proxies: TrustedProxies,
    /// One stack per route, in the routes' order.
    routes: Vec<ForwardAuthStack>,
    /// For a path no route takes: any signed-in user.
    signed_in: ForwardAuthStack,
}

impl std::fmt::Debug for ForwardAuth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ForwardAuth")
            .field("endpoint", &self.endpoint)
            .field("trusted_proxies", &self.trusted_proxies)
            .finish_non_exhaustive()
    }
}

impl ForwardAuth {
    /// The endpoint for `routes`, deciding with `auth`.
    pub(crate) fn new(
        auth: &MeinGptAuth,
        routes: &[Route],
        endpoint: ForwardAuthEndpoint,
        trusted_proxies: TrustedProxies,
    ) -> Self {
        // A proxy lets a request pass on any 2xx: a refusal is always an
        // HTTP one, never the gRPC shape (HTTP 200 with `grpc-status`) that
        // the crate gives a gRPC call.
        let layer = auth.layer().render_rejections_with(|rejection| {
            rejection.error().to_response(rejection.challenge())
        });
        Self {
            endpoint,
            trusted_proxies,
            routes: routes
                .iter()
                .map(|route| {
                    let resource = route.protected_resource.as_ref();
                    decision(&layer, auth.realm(), &route.policy, resource, Admitted)
                })
                .collect(),
            signed_in: decision(&layer, auth.realm(), &Policy::signed_in(), None, Admitted),
        }
    }

    /// Whether `path` asks this endpoint: its path, or its path followed by
    /// the original path (Envoy's `ext_authz` path prefix).
    pub(crate) fn is_asked(&self, path: &str) -> bool {
        self.suffix(path).is_some()
    }

    /// `Some(None)` for the endpoint itself, `Some(Some(path))` for
    /// `{endpoint}/{original path}`.
    fn suffix<'p>(&self, path: &'p str) -> Option<Option<&'p str>> {
        let rest = path.strip_prefix(self.endpoint.path.as_str())?;
        if rest.is_empty() {
            Some(None)
        } else if rest.starts_with('/') {
            Some(Some(rest))
        } else {
            None
        }
    }

    /// The answer to `request`, which [`is_asked`](Self::is_asked): `200`
    /// with the identity headers, or the crate's refusal, or `400` when the
    /// original request is not clear, or `403` to a peer outside
    /// `trusted_proxies`. `prefixes` name `routes` in the log.
    pub(crate) async fn answer(
        &self,
        request: Request<Body>,
        routes: &[Route],
        prefixes: &[Arc<str>],
    ) -> Response<Body> {
        let peer = request
            .extensions()
            .get::<ClientInfo>()
            .map(|info| info.peer.ip());
        if !peer.is_some_and(|peer| self.trusted_proxies.contains(peer)) {
            tracing::warn!(
                target: "meingpt_gateway::forward_auth",
                "forward auth refused to a peer outside trusted_proxies"
            );
            let response = plain(
                StatusCode::FORBIDDEN,
                "forward auth answers trusted proxies only\n",
            );
            return Dispatched::new(Mode::ForwardAuth, None)
                .mark(Verdict::UntrustedProxy.mark(response));
        }
        let (route, method) = match self.original(&request, routes) {
            Ok(found) => found,
            Err(refusal) => return Dispatched::new(Mode::ForwardAuth, None).mark(refused(refusal)),
        };
        let stack = route.map_or(&self.signed_in, |index| &self.routes[index]);
        let response = match stack.clone().oneshot(request).await {
            Ok(response) => response,
            Err(never) => match never {},
        };
        let mut dispatched = Dispatched::new(
            Mode::ForwardAuth,
            route.map(|index| prefixes[index].clone()),
        );
        dispatched.original_method = method;
        dispatched.mark(response)
    }

    /// The index of the route whose policy applies to the original request
    /// (`None`: any signed-in user), and its method.
    fn original(
        &self,
        request: &Request<Body>,
        routes: &[Route],
    ) -> Result<(Option<usize>, Option<Method>), Refusal> {
        let suffix = self.suffix(request.uri().path()).flatten();
        let original = OriginalRequest::read(request.headers(), suffix, &self.endpoint.headers)?;
        let route = match original.path {
            Some(path) => routes::route_for(routes, &RequestPath::parse(path)?)?,
            // Without the original URI no route's policy can be chosen.
            None if !routes.is_empty() => return Err(Refusal::MissingOriginalUri),
            None => None,
        };
        Ok((route.map(|(index, _)| index), original.method))
    }
}

/// Forward auth's answer to a request its route's decision let through:
/// `200`, an empty body, `Cache-Control: no-store`, and the identity
/// headers of the user the auth layer verified (none on a public route).
#[derive(Debug, Clone, Copy)]
pub(crate) struct Admitted;

impl<B> Service<Request<B>> for Admitted {
    type Response = Response<Body>;
    type Error = Infallible;
    type Future = Ready<Result<Response<Body>, Infallible>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: Request<B>) -> Self::Future {
        let mut response = Response::new(Body::empty());
        response
            .headers_mut()
            .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
        let verdict = match request.extensions().get::<MeinGptUser>() {
            Some(user) => {
                identity::insert_identity(response.headers_mut(), user);
                Verdict::Allowed
            }
            None => Verdict::Public,
        };
        ready(Ok(verdict.mark(response)))
    }
}

//! An embed route's stacks ([`crate::embed`]), outermost first:
//!
//! - main: [`Embed`](crate::embed::Embed) →
//!   [`CrossSite`](crate::embed::CrossSite) → tower-http's `Csrf` → the
//!   route's decision ([`decision`]) with its authenticator reading the
//!   session cookie first → `frame-ancestors` →
//!   [`SessionCookie`](crate::embed::SessionCookie) → the proxy;
//! - the session endpoint's: the route's decision with its authenticator
//!   reading `Authorization` only → [`SessionEndpoint`].

use std::convert::Infallible;

use http::header::{self, HeaderValue};
use http::{Request, Response, StatusCode};
use meingpt_auth::{FrameAncestorsLayer, MeinGptAuth, TokenSource};
use tower::ServiceBuilder;
use tower::util::BoxCloneSyncService;
use tower_http::csrf::{CsrfLayer, ProtectionError};

use crate::answer::Body;
use crate::decision::decision;
use crate::embed::cookie::SESSION_COOKIE;
use crate::embed::session::SessionEndpoint;
use crate::embed::{CrossSiteLayer, EmbedBody, EmbedLayer, EmbedOptions, SessionCookieLayer};
use crate::outcome::Verdict;
use crate::proxy::Proxy;
use crate::routes::Route;

type RouteService = BoxCloneSyncService<Request<Body>, Response<Body>, Infallible>;

/// The stack of `route`, an embed route with `options`, around `proxy`.
pub(crate) fn stack(
    auth: &MeinGptAuth,
    route: &Route,
    options: &EmbedOptions,
    proxy: Proxy,
) -> RouteService {
    let from_cookie = auth.with_token_sources(
        std::iter::once(TokenSource::Cookie(SESSION_COOKIE.to_owned()))
            .chain(auth.token_sources().iter().cloned()),
    );
    let from_session_request = auth.with_token_sources([TokenSource::AuthorizationBearer]);
    let frame_ancestors = route
        .frame_ancestors
        .clone()
        .or_else(|| frame_ancestors(&options.meingpt_origins));

    let framed = BoxCloneSyncService::new(
        ServiceBuilder::new()
            .option_layer(frame_ancestors)
            .map_response(|response: Response<Body>| response.map(Body::new))
            .layer(SessionCookieLayer::new())
            .service(proxy),
    );
    let main = authenticated(&from_cookie, route, framed);
    let main = ServiceBuilder::new()
        .layer(CrossSiteLayer::new())
        .layer(CsrfLayer::new().with_rejection_response(cross_origin_refusal))
        .service(main);
    let session = authenticated(
        &from_session_request,
        route,
        BoxCloneSyncService::new(SessionEndpoint::<Body>::new()),
    );
    BoxCloneSyncService::new(
        ServiceBuilder::new()
            .map_response(|response: Response<EmbedBody<Body>>| response.map(Body::new))
            .layer(EmbedLayer::new(&route.prefix, options.clone(), session))
            .service(main),
    )
}

/// `inner` behind the route's decision ([`decision`]) with `auth`.
fn authenticated(auth: &MeinGptAuth, route: &Route, inner: RouteService) -> RouteService {
    BoxCloneSyncService::new(decision(
        &auth.layer(),
        auth.realm(),
        &route.policy,
        route.protected_resource.as_ref(),
        inner,
    ))
}

fn frame_ancestors(origins: &[String]) -> Option<FrameAncestorsLayer> {
    let (first, rest) = origins.split_first()?;
    let mut layer = FrameAncestorsLayer::new(first).ok()?;
    for origin in rest {
        layer = layer.allow(origin).ok()?;
    }
    Some(layer)
}

fn cross_origin_refusal(_: ProtectionError) -> Response<Body> {
    let mut response = Response::new(Body::from("cross-origin request refused\n"));
    *response.status_mut() = StatusCode::FORBIDDEN;
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    Verdict::CrossSite.mark(response)
}

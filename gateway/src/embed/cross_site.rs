//! Middleware that lets a request carrying the session cookie in from
//! another site only as a frame navigation.
//!
//! The cookie is `SameSite=None`: the browser sends it with any request to
//! the app from meinGPT's page, including one another Custom AI App on the
//! same page makes (it shares the cookie's partition). Unsafe methods are
//! held to same-origin by tower-http's `CsrfLayer` (inside this layer);
//! this layer covers the safe ones:
//!
//! - `Sec-Fetch-Site: same-origin` or `none` (the user typed the address),
//!   or no Fetch Metadata at all: passes;
//! - from another site (`cross-site`, `same-site`): passes only as the
//!   navigation of a frame (`Sec-Fetch-Mode: navigate`, `Sec-Fetch-Dest:
//!   iframe`), which is how meinGPT opens the app;
//! - a WebSocket handshake passes only from this origin (its `Origin`, when
//!   sent, must name this host), whatever else it says.
//!
//! Anything else is answered `403`, and never reaches the route's
//! authenticator or the upstream.
//!
//! # Example
//!
//! ```
//! use http::{Request, Response, StatusCode};
//! use meingpt_gateway::embed::CrossSiteLayer;
//! use tower::{Layer, ServiceExt, service_fn};
//!
//! # tokio_test_block_on(async {
//! let service = CrossSiteLayer::new().layer(service_fn(|_: Request<()>| async {
//!     Ok::<_, std::convert::Infallible>(Response::new(String::new()))
//! }));
//! // A script on another site fetching the app with the user's cookie:
//! let request = Request::get("/api/notes")
//!     .header("cookie", "__Host-meingpt-session=a.b.c")
//!     .header("sec-fetch-site", "cross-site")
//!     .header("sec-fetch-mode", "cors")
//!     .body(())
//!     .unwrap();
//! let response = service.oneshot(request).await.unwrap();
//! assert_eq!(response.status(), StatusCode::FORBIDDEN);
//! # });
//! # fn tokio_test_block_on<F: std::future::Future>(f: F) -> F::Output {
//! #     tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(f)
//! # }
//! ```

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use http::header::{self, HeaderValue};
use http::{HeaderMap, Request, Response, StatusCode};
use tower::{Layer, Service};

use super::cookie;
use crate::outcome::Verdict;
use crate::upgrade;

/// Applies [`CrossSite`] to a service. See the [module docs](self).
#[derive(Debug, Clone, Copy, Default)]
pub struct CrossSiteLayer;

impl CrossSiteLayer {
    /// The layer.
    pub fn new() -> Self {
        Self
    }
}

impl<S> Layer<S> for CrossSiteLayer {
    type Service = CrossSite<S>;

    fn layer(&self, inner: S) -> Self::Service {
        CrossSite { inner }
    }
}

/// Middleware that refuses cross-site uses of the session cookie. See the
/// [module docs](self).
#[derive(Debug, Clone)]
pub struct CrossSite<S> {
    inner: S,
}

impl<S> CrossSite<S> {
    /// Wraps `inner`.
    pub fn new(inner: S) -> Self {
        Self { inner }
    }

    /// The inner service.
    pub fn get_ref(&self) -> &S {
        &self.inner
    }

    /// The inner service, mutably.
    pub fn get_mut(&mut self) -> &mut S {
        &mut self.inner
    }

    /// Unwraps the inner service.
    pub fn into_inner(self) -> S {
        self.inner
    }
}

/// Whether a request may use the session cookie it carries.
pub fn is_allowed(headers: &HeaderMap) -> bool {
    if !cookie::is_carried(headers) {
        return true;
    }
    let site = headers.get("sec-fetch-site");
    if upgrade::offered(headers).is_some() {
        let origin_agrees = match (headers.get(header::ORIGIN), headers.get(header::HOST)) {
            (None, _) => true,
            (Some(origin), Some(host)) => origin
                .as_bytes()
                .split(|b| *b == b'/')
                .nth(2)
                .is_some_and(|authority| authority.eq_ignore_ascii_case(host.as_bytes())),
            (Some(_), None) => false,
        };
        return origin_agrees && site.is_none_or(|site| site == "same-origin");
    }
    match site {
        None => true,
        Some(site) if site == "same-origin" || site == "none" => true,
        Some(_) => {
            headers
                .get("sec-fetch-mode")
                .is_some_and(|mode| mode == "navigate")
                && headers
                    .get("sec-fetch-dest")
                    .is_some_and(|dest| dest == "iframe" || dest == "frame")
        }
    }
}

impl<S, ReqBody, ResBody> Service<Request<ReqBody>> for CrossSite<S>
where
    S: Service<Request<ReqBody>, Response = Response<ResBody>>,
    ResBody: From<&'static str>,
{
    type Response = Response<ResBody>;
    type Error = S::Error;
    type Future = ResponseFuture<S::Future, ResBody>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request<ReqBody>) -> Self::Future {
        if is_allowed(request.headers()) {
            return ResponseFuture {
                kind: Kind::Inner {
                    future: self.inner.call(request),
                },
            };
        }
        let mut response = Response::new(ResBody::from(
            "this app's session cannot be used from another site\n",
        ));
        *response.status_mut() = StatusCode::FORBIDDEN;
        response.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("text/plain; charset=utf-8"),
        );
        ResponseFuture {
            kind: Kind::Refused {
                response: Some(Verdict::CrossSite.mark(response)),
            },
        }
    }
}

pin_project_lite::pin_project! {
    /// Response future of [`CrossSite`].
    pub struct ResponseFuture<F, B> {
        #[pin]
        kind: Kind<F, B>,
    }
}

pin_project_lite::pin_project! {
    #[project = KindProjection]
    enum Kind<F, B> {
        Inner { #[pin] future: F },
        Refused { response: Option<Response<B>> },
    }
}

impl<F, B, E> Future for ResponseFuture<F, B>
where
    F: Future<Output = Result<Response<B>, E>>,
{
    type Output = Result<Response<B>, E>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        match self.project().kind.project() {
            KindProjection::Inner { future } => future.poll(cx),
            KindProjection::Refused { response } => {
                Poll::Ready(Ok(response.take().expect("polled after completion")))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        map.insert(
            header::COOKIE,
            HeaderValue::from_static("__Host-meingpt-session=a.b.c"),
        );
        map.insert(header::HOST, HeaderValue::from_static("app.example"));
        for (name, value) in pairs {
            map.insert(*name, HeaderValue::from_static(value));
        }
        map
    }

    #[test]
    fn meingpt_framing_the_app_passes() {
        assert!(is_allowed(&request(&[
            ("sec-fetch-site", "cross-site"),
            ("sec-fetch-mode", "navigate"),
            ("sec-fetch-dest", "iframe"),
        ])));
    }

    #[test]
    fn the_apps_own_requests_pass() {
        assert!(is_allowed(&request(&[
            ("sec-fetch-site", "same-origin"),
            ("sec-fetch-mode", "cors"),
        ])));
        assert!(is_allowed(&request(&[])));
    }

    #[test]
    fn another_site_reading_or_opening_the_app_with_the_cookie_is_refused() {
        for (mode, dest) in [
            ("cors", "empty"),
            ("no-cors", "image"),
            ("navigate", "document"),
        ] {
            assert!(
                !is_allowed(&request(&[
                    ("sec-fetch-site", "cross-site"),
                    ("sec-fetch-mode", mode),
                    ("sec-fetch-dest", dest),
                ])),
                "{mode} {dest}"
            );
        }
        assert!(!is_allowed(&request(&[
            ("sec-fetch-site", "same-site"),
            ("sec-fetch-mode", "cors"),
        ])));
    }

    #[test]
    fn a_websocket_from_another_origin_is_refused() {
        let websocket = [
            ("connection", "upgrade"),
            ("upgrade", "websocket"),
            ("sec-fetch-mode", "websocket"),
        ];
        let with = |extra: &[(&'static str, &'static str)]| {
            let mut pairs = websocket.to_vec();
            pairs.extend_from_slice(extra);
            is_allowed(&request(&pairs))
        };
        assert!(with(&[
            ("sec-fetch-site", "same-origin"),
            ("origin", "https://app.example")
        ]));
        assert!(!with(&[
            ("sec-fetch-site", "cross-site"),
            ("origin", "https://evil.example")
        ]));
        // An older browser: no Fetch Metadata, but the Origin tells.
        assert!(!with(&[("origin", "https://evil.example")]));
        assert!(with(&[("origin", "https://app.example")]));
    }

    #[test]
    fn requests_without_the_cookie_are_not_its_business() {
        let mut headers = request(&[("sec-fetch-site", "cross-site")]);
        headers.remove(header::COOKIE);
        assert!(is_allowed(&headers));
    }
}

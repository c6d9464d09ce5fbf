//! Embed mode: an unmodified web app framed by meinGPT as a Custom AI App.
//!
//! meinGPT frames a Custom AI App with the user's token in the address's
//! fragment (`#token=…`), which no server sees, and hands out fresh tokens
//! to the frame over `postMessage`. An app that does not do this itself
//! gets it from the gateway:
//!
//! 1. A navigation without a valid session gets the **first-load page**
//!    ([`page`]), which reads the token (or asks meinGPT for one) and posts
//!    it to the route's session endpoint (`{prefix}/_meingpt/session`).
//! 2. The **session endpoint** ([`session`]) takes only a same-origin JSON
//!    `POST`, verifies the token with the route's authenticator and policy
//!    and sets a cookie holding the token ([`cookie`]); replicas stay
//!    stateless.
//! 3. Requests carrying the cookie are verified like any other (the route's
//!    authenticator reads the cookie first); the cookie is taken out before
//!    the upstream sees the request ([`SessionCookieLayer`]).
//! 4. The app's HTML pages get one `<script>` ([`inject`], streaming) that
//!    refreshes the session before it expires and when a `fetch` is
//!    answered `401`; WebSockets are closed at the session's end
//!    ([`websocket`]) so that the app reconnects with the fresh cookie.
//! 5. A cookie-carrying request from another site passes only as a frame
//!    navigation ([`cross_site`]); unsafe requests must be same-origin
//!    (tower-http's `CsrfLayer`).
//! 6. The upstream's `X-Frame-Options` is removed (the route's
//!    `frame-ancestors` names meinGPT instead), its own session cookie is
//!    never passed on, and, when the route asks, its cookies are made
//!    partitioned third-party cookies.
//!
//! [`Embed`] is the outermost layer of an embed route: it answers the
//! endpoints, sends the session endpoint's requests to their own stack
//! (the route's authenticator and policy in front of
//! [`session::SessionEndpoint`]), and shapes the answers of the rest.

use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, ready};

use bytes::Bytes;
use http::header::{self, HeaderValue};
use http::{HeaderMap, Method, Request, Response, StatusCode};
use http_body::Body;
use meingpt_auth::AuthError;
use tower::{Layer, Service};

use crate::outcome::Verdict;

mod body;
pub mod cookie;
pub mod cross_site;
pub mod inject;
pub mod page;
pub mod session;
mod session_cookie;
#[cfg(feature = "dev-issuer")]
pub mod stand_in;
pub mod websocket;

pub use body::EmbedBody;
pub use cross_site::{CrossSite, CrossSiteLayer};
pub use inject::{BoxError, InjectScript};
use page::{LOGOUT_PATH, Pages, SCRIPT_PATH, SESSION_PATH};
pub use session_cookie::{SessionCookie, SessionCookieLayer, SessionExpiry};
#[cfg(feature = "dev-issuer")]
pub use stand_in::StandIn;

/// This build has no meinGPT stand-in (feature `dev-issuer`).
#[cfg(not(feature = "dev-issuer"))]
#[derive(Debug, Clone)]
pub enum StandIn {}

/// How an embed route behaves.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EmbedOptions {
    /// The origins of meinGPT (the only ones whose token messages count).
    pub meingpt_origins: Vec<String>,
    /// Whether the app's HTML pages get the refresh script.
    pub inject_script: bool,
    /// Whether the upstream's cookies become `SameSite=None; Secure;
    /// Partitioned`.
    pub partition_cookies: bool,
}

/// Applies [`Embed`] to a route's stack. See the [module docs](self).
#[derive(Debug, Clone)]
pub struct EmbedLayer<T> {
    shared: Arc<EmbedRoute>,
    session: T,
}

#[derive(Debug)]
struct EmbedRoute {
    /// The route's prefix without a trailing `/` (empty for `/`).
    base: String,
    pages: Pages,
    options: EmbedOptions,
    /// `<script src=…` up to the expiry.
    script_tag: String,
}

impl<T> EmbedLayer<T> {
    /// Embed mode for the route at `prefix`; `session` is the session
    /// endpoint's stack (the route's authenticator and policy in front of
    /// [`session::SessionEndpoint`]).
    pub fn new(prefix: &str, options: EmbedOptions, session: T) -> Self {
        let base = prefix.trim_end_matches('/').to_owned();
        let pages = Pages::new(&base, &options.meingpt_origins);
        let script_tag = format!("<script src=\"{base}{SCRIPT_PATH}\" data-expires-at=\"");
        Self {
            shared: Arc::new(EmbedRoute {
                base,
                pages,
                options,
                script_tag,
            }),
            session,
        }
    }
}

impl<S, T: Clone> Layer<S> for EmbedLayer<T> {
    type Service = Embed<S, T>;

    fn layer(&self, inner: S) -> Self::Service {
        Embed {
            inner,
            session: self.session.clone(),
            shared: self.shared.clone(),
        }
    }
}

/// Middleware of an embed route. See the [module docs](self).
#[derive(Debug, Clone)]
pub struct Embed<S, T> {
    inner: S,
    session: T,
    shared: Arc<EmbedRoute>,
}

impl<S, T> Embed<S, T> {
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

/// Which endpoint of the route a path is, if any.
enum Endpoint {
    Session,
    Logout,
    Script,
}

impl EmbedRoute {
    fn endpoint(&self, path: &str) -> Option<Endpoint> {
        let rest = path.strip_prefix(self.base.as_str())?;
        match rest {
            SESSION_PATH => Some(Endpoint::Session),
            LOGOUT_PATH => Some(Endpoint::Logout),
            SCRIPT_PATH => Some(Endpoint::Script),
            _ => None,
        }
    }
}

impl<S, T, ReqBody, ResBody> Service<Request<ReqBody>> for Embed<S, T>
where
    S: Service<Request<ReqBody>, Response = Response<ResBody>, Error = Infallible>,
    T: Service<Request<ReqBody>, Response = Response<ResBody>, Error = Infallible>
        + Clone
        + Send
        + 'static,
    T::Future: Send,
    ReqBody: Body + Default + Send + 'static,
    ReqBody::Data: Send,
    ReqBody::Error: Into<BoxError>,
    ResBody: Body<Data = Bytes> + Send + 'static,
    ResBody::Error: Into<BoxError>,
{
    type Response = Response<EmbedBody<ResBody>>;
    type Error = Infallible;
    type Future = ResponseFuture<S::Future, ResBody>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut request: Request<ReqBody>) -> Self::Future {
        let shared = &self.shared;
        match shared.endpoint(request.uri().path()) {
            Some(Endpoint::Script) => {
                let response = if matches!(*request.method(), Method::GET | Method::HEAD) {
                    Verdict::Endpoint.mark(shared.pages.script())
                } else {
                    plain(StatusCode::METHOD_NOT_ALLOWED, "method not allowed\n")
                };
                return ResponseFuture::ready(response);
            }
            Some(Endpoint::Logout) => {
                return ResponseFuture::ready(session::logout(&request));
            }
            Some(Endpoint::Session) => {
                let session = self.session.clone();
                return ResponseFuture::session(session::serve(request, session));
            }
            None => {}
        }
        let navigation = is_navigation(request.method(), request.headers());
        if navigation && shared.options.inject_script {
            // The page is rewritten as it streams: it must come as is.
            request.headers_mut().insert(
                header::ACCEPT_ENCODING,
                HeaderValue::from_static("identity"),
            );
        }
        ResponseFuture {
            kind: Kind::Inner {
                future: self.inner.call(request),
                navigation,
                shared: shared.clone(),
            },
        }
    }
}

/// Whether a request is a browser loading a page (into a tab or a frame),
/// by its Fetch Metadata; without that (an older browser), by asking for
/// HTML.
pub fn is_navigation(method: &Method, headers: &HeaderMap) -> bool {
    if method != Method::GET {
        return false;
    }
    match headers.get("sec-fetch-mode") {
        Some(mode) => {
            mode == "navigate"
                && headers.get("sec-fetch-dest").is_none_or(|dest| {
                    ["document", "iframe", "frame"]
                        .iter()
                        .any(|kind| dest.as_bytes() == kind.as_bytes())
                })
        }
        None => headers
            .get_all(header::ACCEPT)
            .iter()
            .any(|accept| accept.to_str().is_ok_and(|a| a.contains("text/html"))),
    }
}

pin_project_lite::pin_project! {
    /// Response future of [`Embed`].
    pub struct ResponseFuture<F, B> {
        #[pin]
        kind: Kind<F, B>,
    }
}

type SessionFuture<B> = Pin<Box<dyn Future<Output = Response<B>> + Send>>;

pin_project_lite::pin_project! {
    #[project = KindProjection]
    enum Kind<F, B> {
        Inner {
            #[pin]
            future: F,
            navigation: bool,
            shared: Arc<EmbedRoute>,
        },
        Session {
            future: SessionFuture<EmbedBody<B>>,
        },
        Ready {
            response: Option<Response<EmbedBody<B>>>,
        },
    }
}

impl<F, B> ResponseFuture<F, B> {
    fn ready(response: Response<EmbedBody<B>>) -> Self {
        Self {
            kind: Kind::Ready {
                response: Some(response),
            },
        }
    }

    fn session(future: SessionFuture<EmbedBody<B>>) -> Self {
        Self {
            kind: Kind::Session { future },
        }
    }
}

impl<F, B> Future for ResponseFuture<F, B>
where
    F: Future<Output = Result<Response<B>, Infallible>>,
    B: Body<Data = Bytes>,
    B::Error: Into<BoxError>,
{
    type Output = Result<Response<EmbedBody<B>>, Infallible>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        match self.project().kind.project() {
            KindProjection::Ready { response } => {
                Poll::Ready(Ok(response.take().expect("polled after completion")))
            }
            KindProjection::Session { future } => future.as_mut().poll(cx).map(Ok),
            KindProjection::Inner {
                future,
                navigation,
                shared,
            } => {
                let Ok(response) = ready!(future.poll(cx));
                Poll::Ready(Ok(shared.answer(response, *navigation)))
            }
        }
    }
}

impl EmbedRoute {
    /// Shapes an answer of the route for the frame.
    fn answer<B>(&self, response: Response<B>, navigation: bool) -> Response<EmbedBody<B>>
    where
        B: Body<Data = Bytes>,
    {
        let (mut parts, body) = response.into_parts();
        // The route's frame-ancestors decides who may frame the app.
        parts.headers.remove(header::X_FRAME_OPTIONS);
        cookie::remove_upstream_session(&mut parts.headers);
        if self.options.partition_cookies {
            cookie::partition_upstream_cookies(&mut parts.headers);
        }
        if navigation
            && (parts.status == StatusCode::UNAUTHORIZED || parts.status == StatusCode::FORBIDDEN)
            && parts.extensions.get::<AuthError>().is_some()
        {
            // The gateway's own refusal of a page: sign in from the frame
            // (with a user the route refuses, the page then says so).
            let mut page: Response<EmbedBody<B>> = self.pages.first_load(parts.status);
            if let Some(challenge) = parts.headers.get(header::WWW_AUTHENTICATE) {
                page.headers_mut()
                    .insert(header::WWW_AUTHENTICATE, challenge.clone());
            }
            *page.extensions_mut() = parts.extensions;
            return page;
        }
        let expiry = parts.extensions.get::<SessionExpiry>().copied();
        let body = match expiry {
            Some(expiry)
                if navigation
                    && self.options.inject_script
                    && parts.status == StatusCode::OK
                    && is_html(&parts.headers)
                    && !is_encoded(&parts.headers) =>
            {
                let tag = format!(
                    "{}{}\"></script>",
                    self.script_tag,
                    expiry.expires_at().saturating_mul(1000)
                );
                match InjectScript::new(body, Arc::from(tag), charset(&parts.headers)) {
                    Ok(injected) => {
                        parts.headers.remove(header::CONTENT_LENGTH);
                        parts.headers.remove(header::ACCEPT_RANGES);
                        if let Some(etag) = parts.headers.get(header::ETAG)
                            && !etag.as_bytes().starts_with(b"W/")
                            && let Ok(weak) =
                                HeaderValue::from_bytes(&[b"W/", etag.as_bytes()].concat())
                        {
                            // Same meaning, other bytes.
                            parts.headers.insert(header::ETAG, weak);
                        }
                        EmbedBody::injected(injected)
                    }
                    Err(body) => EmbedBody::inner(body),
                }
            }
            _ => EmbedBody::inner(body),
        };
        Response::from_parts(parts, body)
    }
}

fn is_html(headers: &HeaderMap) -> bool {
    headers.get(header::CONTENT_TYPE).is_some_and(|value| {
        let essence = value.as_bytes().split(|b| *b == b';').next().unwrap_or(b"");
        essence.trim_ascii().eq_ignore_ascii_case(b"text/html")
    })
}

fn is_encoded(headers: &HeaderMap) -> bool {
    headers
        .get_all(header::CONTENT_ENCODING)
        .iter()
        .any(|value| !value.as_bytes().eq_ignore_ascii_case(b"identity"))
}

/// The `charset` parameter of the `Content-Type`.
fn charset(headers: &HeaderMap) -> Option<&str> {
    let value = headers.get(header::CONTENT_TYPE)?.to_str().ok()?;
    value.split(';').skip(1).find_map(|parameter| {
        let (name, value) = parameter.split_once('=')?;
        name.trim()
            .eq_ignore_ascii_case("charset")
            .then(|| value.trim().trim_matches('"'))
    })
}

/// A short plain-text answer of the gateway's own endpoints.
fn plain<B>(status: StatusCode, text: &'static str) -> Response<EmbedBody<B>> {
    let mut response = Response::new(EmbedBody::from(text));
    *response.status_mut() = status;
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    Verdict::Endpoint.mark(response)
}

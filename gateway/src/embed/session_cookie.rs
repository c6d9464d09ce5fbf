//! Middleware that takes the session cookie out of a verified request
//! before the upstream sees it, and tells when its session ends.
//!
//! It sits behind the route's authenticator and policy. A request that
//! carried the cookie gets a [`SessionExpiry`] in its extensions (the
//! WebSocket tunnel closes at that moment) and in its answer's (the
//! refresh script added to a page starts from it).

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll, ready};

use http::{Request, Response};
use meingpt_auth::MeinGptUser;
use tower::{Layer, Service};

use super::cookie;

/// When the session of a cookie-authenticated request ends: its token's
/// `exp`, in seconds since the Unix epoch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SessionExpiry(i64);

impl SessionExpiry {
    /// The expiry at `exp` (seconds since the Unix epoch).
    pub fn new(exp: i64) -> Self {
        Self(exp)
    }

    /// Seconds since the Unix epoch.
    pub fn expires_at(self) -> i64 {
        self.0
    }

    /// How long from now until the session ends (zero when it has).
    pub fn remaining(self) -> std::time::Duration {
        let end = std::time::UNIX_EPOCH
            + std::time::Duration::from_secs(u64::try_from(self.0).unwrap_or(0));
        end.duration_since(std::time::SystemTime::now())
            .unwrap_or_default()
    }
}

/// Applies [`SessionCookie`] to a service. See the [embed module docs](super).
#[derive(Debug, Clone, Copy, Default)]
pub struct SessionCookieLayer;

impl SessionCookieLayer {
    /// The layer.
    pub fn new() -> Self {
        Self
    }
}

impl<S> Layer<S> for SessionCookieLayer {
    type Service = SessionCookie<S>;

    fn layer(&self, inner: S) -> Self::Service {
        SessionCookie { inner }
    }
}

/// Middleware that removes the session cookie before the upstream sees a
/// request, and tells when its session ends ([`SessionExpiry`]). See the
/// [embed module docs](super).
#[derive(Debug, Clone)]
pub struct SessionCookie<S> {
    inner: S,
}

impl<S> SessionCookie<S> {
    /// The inner service.
    pub fn get_ref(&self) -> &S {
        &self.inner
    }

    /// Unwraps the inner service.
    pub fn into_inner(self) -> S {
        self.inner
    }
}

impl<S, ReqBody, ResBody> Service<Request<ReqBody>> for SessionCookie<S>
where
    S: Service<Request<ReqBody>, Response = Response<ResBody>>,
{
    type Response = Response<ResBody>;
    type Error = S::Error;
    type Future = ResponseFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut request: Request<ReqBody>) -> Self::Future {
        let carried = cookie::remove(request.headers_mut());
        let expiry = carried
            .then(|| request.extensions().get::<MeinGptUser>())
            .flatten()
            .map(|user| SessionExpiry(user.expires_at()));
        if let Some(expiry) = expiry {
            request.extensions_mut().insert(expiry);
        }
        ResponseFuture {
            future: self.inner.call(request),
            expiry,
        }
    }
}

pin_project_lite::pin_project! {
    /// Response future of [`SessionCookie`].
    pub struct ResponseFuture<F> {
        #[pin]
        future: F,
        expiry: Option<SessionExpiry>,
    }
}

impl<F, B, E> Future for ResponseFuture<F>
where
    F: Future<Output = Result<Response<B>, E>>,
{
    type Output = Result<Response<B>, E>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let mut response = ready!(this.future.poll(cx))?;
        if let Some(expiry) = this.expiry.take() {
            response.extensions_mut().insert(expiry);
        }
        Poll::Ready(Ok(response))
    }
}

//! Middleware that authenticates every request with a meinGPT (or other
//! issuer's) token.
//!
//! The token is taken from the configured [`TokenSource`]s (by default
//! `X-meinGPT-JWT`, then `Authorization: Bearer`), verified, and the
//! [`MeinGptUser`] is inserted into the request extensions. A request that
//! fails is answered by the layer itself (RFC 6750; see
//! [`AuthError`]) and never reaches the inner service.
//!
//! # Example
//!
//! ```
//! use axum::{Router, routing::get, body::Body};
//! use http::{Request, StatusCode};
//! use meingpt_auth::MeinGptAuth;
//! use tower::ServiceExt;
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() {
//! let auth = MeinGptAuth::builder().organization("clx0987654321").build().unwrap();
//! let app = Router::new().route("/", get(|| async { "hello" })).layer(auth.layer());
//!
//! // No token: 401 with a bare challenge.
//! let response = app.oneshot(Request::new(Body::empty())).await.unwrap();
//! assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
//! assert_eq!(response.headers()["www-authenticate"], "Bearer realm=\"meingpt\"");
//! # }
//! ```
//!
//! [`TokenSource`]: crate::TokenSource

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use http::{Request, Response};
use tower_layer::Layer;
use tower_service::Service;

use crate::claims::MeinGptUser;
use crate::config::MeinGptAuth;
use crate::error::AuthError;

/// Applies [`Auth`] to a service. See the [module docs](self).
#[derive(Debug, Clone)]
pub struct AuthLayer {
    auth: MeinGptAuth,
    allow_anonymous: bool,
}

impl AuthLayer {
    /// A layer that requires a valid token.
    pub fn new(auth: MeinGptAuth) -> Self {
        Self {
            auth,
            allow_anonymous: false,
        }
    }

    /// Whether requests without any token pass through anonymously (a token
    /// that is present but bad is rejected either way).
    pub fn allow_anonymous(mut self, allow: bool) -> Self {
        self.allow_anonymous = allow;
        self
    }
}

impl<S> Layer<S> for AuthLayer {
    type Service = Auth<S>;

    fn layer(&self, inner: S) -> Self::Service {
        Auth {
            inner,
            auth: self.auth.clone(),
            allow_anonymous: self.allow_anonymous,
        }
    }
}

/// Middleware that authenticates requests. See the [module docs](self).
#[derive(Debug, Clone)]
pub struct Auth<S> {
    inner: S,
    auth: MeinGptAuth,
    allow_anonymous: bool,
}

impl<S> Auth<S> {
    /// Wraps `inner`, requiring a valid token.
    pub fn new(inner: S, auth: MeinGptAuth) -> Self {
        AuthLayer::new(auth).layer(inner)
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

/// Marks a request as having passed the auth layer; carries what the
/// extractors and guards need to answer the way the layer would.
#[derive(Clone)]
pub(crate) struct AuthContext {
    pub(crate) auth: MeinGptAuth,
}

impl AuthContext {
    pub(crate) fn reject<B: From<String>>(&self, error: &AuthError) -> Response<B> {
        self.auth.reject(error)
    }
}

impl<S, ReqBody, ResBody> Service<Request<ReqBody>> for Auth<S>
where
    S: Service<Request<ReqBody>, Response = Response<ResBody>> + Clone + Send + 'static,
    S::Future: Send + 'static,
    ReqBody: Send + 'static,
    ResBody: From<String> + Send + 'static,
{
    type Response = Response<ResBody>;
    type Error = S::Error;
    type Future = ResponseFuture<Response<ResBody>, S::Error>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut req: Request<ReqBody>) -> Self::Future {
        let clone = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, clone);
        let auth = self.auth.clone();
        let allow_anonymous = self.allow_anonymous;
        ResponseFuture {
            inner: Box::pin(async move {
                let outcome = auth.authenticate(req.headers()).await;
                match outcome {
                    Ok(Some(user)) => {
                        req.extensions_mut().insert::<MeinGptUser>(user);
                    }
                    Ok(None) if allow_anonymous => {}
                    Ok(None) => return Ok(reject(&auth, &AuthError::MissingToken)),
                    Err(error) => return Ok(reject(&auth, &error)),
                }
                req.extensions_mut().insert(AuthContext { auth });
                inner.call(req).await
            }),
        }
    }
}

fn reject<B: From<String>>(auth: &MeinGptAuth, error: &AuthError) -> Response<B> {
    tracing::debug!(
        target: "meingpt_auth::layer",
        status = error.status().as_u16(),
        error = error.error_code().unwrap_or("missing_token"),
        "request rejected"
    );
    auth.reject(error)
}

/// Response future of [`Auth`].
pub struct ResponseFuture<T, E> {
    inner: Pin<Box<dyn Future<Output = Result<T, E>> + Send>>,
}

impl<T, E> Future for ResponseFuture<T, E> {
    type Output = Result<T, E>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        self.inner.as_mut().poll(cx)
    }
}

impl<T, E> fmt::Debug for ResponseFuture<T, E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ResponseFuture").finish_non_exhaustive()
    }
}

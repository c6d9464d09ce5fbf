//! Middleware that lets a request through only if the authenticated user
//! has a role, belongs to a team, or passes any predicate.
//!
//! Guards go inside the auth layer (`.route_layer(require_role(..))` on a
//! router that has `.layer(auth.layer())`). They answer:
//!
//! - `403` with `WWW-Authenticate: Bearer …, error="insufficient_scope"`
//!   when the user lacks what the route requires;
//! - `401` with a bare challenge when no user was authenticated (a route
//!   behind [`MeinGptAuth::optional_layer`](crate::MeinGptAuth::optional_layer));
//! - `500` naming the missing layer when the auth layer is not applied.
//!
//! # Example
//!
//! ```
//! use axum::{Router, routing::get, body::Body};
//! use http::{Request, StatusCode};
//! use meingpt_auth::{MeinGptAuth, Role, require_role};
//! use tower::ServiceExt;
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() {
//! let auth = MeinGptAuth::builder().organization("clx0987654321").build().unwrap();
//! let app = Router::new()
//!     .route("/admin", get(|| async { "secret" }))
//!     .route_layer(require_role(Role::Admin))
//!     .layer(auth.optional_layer());
//!
//! // Anonymous: the guard asks for authentication.
//! let response = app.oneshot(Request::get("/admin").body(Body::empty()).unwrap()).await.unwrap();
//! assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
//! # }
//! ```

mod predicate;
mod role;
mod scope;
mod team;

pub use predicate::require_user;
pub use role::{require_any_role, require_role};
pub use scope::{require_all_scopes, require_any_scope, require_scope};
pub use team::{require_team_id, require_team_name};

use std::fmt;
use std::future::{Ready, ready};
use std::sync::Arc;
use std::task::{Context, Poll};

use http::{Request, Response, StatusCode};
use tower_layer::Layer;
use tower_service::Service;

use crate::claims::MeinGptUser;
use crate::error::AuthError;
use crate::layer::AuthContext;

type Predicate = Arc<dyn Fn(&MeinGptUser) -> bool + Send + Sync>;

/// Applies [`Guard`] to a service. See the [module docs](self).
#[derive(Clone)]
pub struct GuardLayer {
    predicate: Predicate,
    what: &'static str,
}

impl GuardLayer {
    /// A guard that admits users for whom `predicate` returns `true`.
    pub fn new(predicate: impl Fn(&MeinGptUser) -> bool + Send + Sync + 'static) -> Self {
        Self::named("predicate", predicate)
    }

    pub(crate) fn named(
        what: &'static str,
        predicate: impl Fn(&MeinGptUser) -> bool + Send + Sync + 'static,
    ) -> Self {
        Self {
            predicate: Arc::new(predicate),
            what,
        }
    }
}

impl fmt::Debug for GuardLayer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("GuardLayer")
            .field("requires", &self.what)
            .finish()
    }
}

impl<S> Layer<S> for GuardLayer {
    type Service = Guard<S>;

    fn layer(&self, inner: S) -> Self::Service {
        Guard {
            inner,
            predicate: self.predicate.clone(),
            what: self.what,
        }
    }
}

/// Middleware that admits only users passing a check. See the [module docs](self).
#[derive(Clone)]
pub struct Guard<S> {
    inner: S,
    predicate: Predicate,
    what: &'static str,
}

impl<S: fmt::Debug> fmt::Debug for Guard<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Guard")
            .field("inner", &self.inner)
            .field("requires", &self.what)
            .finish()
    }
}

impl<S> Guard<S> {
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

impl<S, ReqBody, ResBody> Service<Request<ReqBody>> for Guard<S>
where
    S: Service<Request<ReqBody>, Response = Response<ResBody>>,
    ResBody: From<String>,
{
    type Response = Response<ResBody>;
    type Error = S::Error;
    type Future = ResponseFuture<S::Future, Response<ResBody>, S::Error>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Request<ReqBody>) -> Self::Future {
        let extensions = req.extensions();
        let Some(context) = extensions.get::<AuthContext>() else {
            tracing::error!(
                target: "meingpt_auth::guard",
                "guard used without the auth layer; apply MeinGptAuth::layer() outside it"
            );
            return ResponseFuture::rejected(missing_layer());
        };
        let error = match extensions.get::<MeinGptUser>() {
            Some(user) if (self.predicate)(user) => {
                return ResponseFuture::allowed(self.inner.call(req));
            }
            Some(_) => AuthError::InsufficientScope,
            None => AuthError::MissingToken,
        };
        tracing::debug!(
            target: "meingpt_auth::guard",
            requires = self.what,
            status = error.status().as_u16(),
            "request refused by guard"
        );
        ResponseFuture::rejected(context.reject(&error))
    }
}

pub(crate) const MISSING_LAYER: &str = "Can't find the authenticated user. Is `MeinGptAuth::layer()` (or `optional_layer()`) applied outside this route?";

pub(crate) fn missing_layer<B: From<String>>() -> Response<B> {
    let mut response = Response::new(B::from(MISSING_LAYER.to_owned()));
    *response.status_mut() = StatusCode::INTERNAL_SERVER_ERROR;
    response.headers_mut().insert(
        http::header::CONTENT_TYPE,
        http::HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    response
}

pin_project_lite::pin_project! {
    /// Response future of [`Guard`].
    pub struct ResponseFuture<F, T, E> {
        #[pin]
        kind: Kind<F, T, E>,
    }
}

pin_project_lite::pin_project! {
    #[project = KindProjection]
    enum Kind<F, T, E> {
        Allowed { #[pin] future: F },
        Rejected { response: Ready<Result<T, E>> },
    }
}

impl<F, T, E> ResponseFuture<F, T, E> {
    fn allowed(future: F) -> Self {
        Self {
            kind: Kind::Allowed { future },
        }
    }

    fn rejected(response: T) -> Self {
        Self {
            kind: Kind::Rejected {
                response: ready(Ok(response)),
            },
        }
    }
}

impl<F, T, E> std::future::Future for ResponseFuture<F, T, E>
where
    F: std::future::Future<Output = Result<T, E>>,
{
    type Output = Result<T, E>;

    fn poll(self: std::pin::Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        match self.project().kind.project() {
            KindProjection::Allowed { future } => future.poll(cx),
            KindProjection::Rejected { response } => std::pin::Pin::new(response).poll(cx),
        }
    }
}

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
//! Refusals are rendered like the layer's: RFC 6750 with the configured
//! realm, the gRPC error shape for gRPC calls, or the layer's
//! [`render_rejections_with`](crate::AuthLayer::render_rejections_with) hook.
//! Guards work on any service whose body is an [`http_body::Body`] of
//! [`Bytes`](bytes::Bytes) (their responses carry [`AuthBody`]).
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
use std::sync::Arc;
use std::task::{Context, Poll};

use http::{Request, Response};
use tower_layer::Layer;
use tower_service::Service;

use crate::body::AuthBody;
pub use crate::body::ResponseFuture;
use crate::claims::MeinGptUser;
use crate::error::AuthError;
use crate::layer::AuthContext;
use crate::metrics;
use crate::rejection::{is_grpc, missing_layer};
use crate::resource::is_scope_token;

type Predicate = Arc<dyn Fn(&MeinGptUser) -> bool + Send + Sync>;

/// Applies [`Guard`] to a service. See the [module docs](self).
#[derive(Clone)]
pub struct GuardLayer {
    predicate: Predicate,
    what: &'static str,
    scope: Option<ChallengeScope>,
}

/// The scopes a `403` names (`scope="…"`), space-separated.
type ChallengeScope = Arc<str>;

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
            scope: None,
        }
    }

    /// The scopes a refusal of this guard names in its challenge
    /// (`WWW-Authenticate: Bearer …, error="insufficient_scope",
    /// scope="…"`, RFC 6750 §3): what would be enough, so that an OAuth
    /// client (an MCP client, say) asks the authorization server for them
    /// and tries again (step-up). The scope guards
    /// ([`require_scope`], …) name theirs; a custom
    /// guard names none unless told. Scopes that are not RFC 6749 scope
    /// tokens (printable ASCII without spaces, quotes or backslashes) are
    /// left out.
    ///
    /// ```
    /// use meingpt_auth::require_user;
    ///
    /// // meinGPT's users are vouched for by their organization; other
    /// // issuers' tokens need the scope.
    /// let guard = require_user(|user| user.is_meingpt() || user.has_scope("mcp:tools"))
    ///     .challenge_scope(["mcp:tools"]);
    /// # let _ = guard;
    /// ```
    pub fn challenge_scope<I, T>(mut self, scopes: I) -> Self
    where
        I: IntoIterator<Item = T>,
        T: AsRef<str>,
    {
        let named: Vec<String> = scopes
            .into_iter()
            .map(|scope| scope.as_ref().to_owned())
            .filter(|scope| is_scope_token(scope))
            .collect();
        self.scope = (!named.is_empty()).then(|| Arc::from(named.join(" ")));
        self
    }
}

impl fmt::Debug for GuardLayer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("GuardLayer")
            .field("requires", &self.what)
            .field("scope", &self.scope)
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
            scope: self.scope.clone(),
        }
    }
}

/// Middleware that admits only users passing a check. See the [module docs](self).
#[derive(Clone)]
pub struct Guard<S> {
    inner: S,
    predicate: Predicate,
    what: &'static str,
    scope: Option<ChallengeScope>,
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
{
    type Response = Response<AuthBody<ResBody>>;
    type Error = S::Error;
    type Future = ResponseFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request<ReqBody>) -> Self::Future {
        let extensions = request.extensions();
        let Some(context) = extensions.get::<AuthContext>() else {
            return ResponseFuture::answered(missing_layer(is_grpc(request.headers())));
        };
        let error = match extensions.get::<MeinGptUser>() {
            Some(user) if (self.predicate)(user) => {
                return ResponseFuture::inner(self.inner.call(request));
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
        metrics::request_refused(&error);
        let context = context.clone();
        let (parts, _body) = request.into_parts();
        ResponseFuture::answered(context.reject_naming(&error, &parts, self.scope.as_deref()))
    }
}

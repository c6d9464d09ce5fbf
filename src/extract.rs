//! Axum extractors: [`MeinGptUser`] and `Option<MeinGptUser>`.
//!
//! The auth layer does the verifying; the extractors read its result.
//!
//! - `MeinGptUser`: the authenticated user, or `401` when the route is behind
//!   [`MeinGptAuth::optional_layer`](crate::MeinGptAuth::optional_layer) and
//!   no token was sent.
//! - `Option<MeinGptUser>`: `None` for anonymous requests (a bad token was
//!   already rejected by the layer).
//! - Either one without the layer: `500` with a message that names the layer.
//!
//! # Example
//!
//! ```
//! use axum::{Json, Router, routing::get, body::Body};
//! use http::{Request, StatusCode};
//! use meingpt_auth::{MeinGptAuth, MeinGptUser};
//! use tower::ServiceExt;
//!
//! async fn me(user: MeinGptUser) -> Json<MeinGptUser> {
//!     Json(user)
//! }
//!
//! async fn hello(user: Option<MeinGptUser>) -> String {
//!     match user {
//!         Some(user) => format!("hello {}", user.sub()),
//!         None => "hello stranger".into(),
//!     }
//! }
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() {
//! let auth = MeinGptAuth::builder().organization("clx0987654321").build().unwrap();
//! let app = Router::new()
//!     .route("/me", get(me))
//!     .route("/hello", get(hello))
//!     .layer(auth.optional_layer());
//!
//! let response = app.oneshot(Request::get("/hello").body(Body::empty()).unwrap()).await.unwrap();
//! assert_eq!(response.status(), StatusCode::OK);
//! # }
//! ```

use std::fmt;

use axum::extract::{FromRequestParts, OptionalFromRequestParts};
use axum::response::{IntoResponse, Response};
use http::StatusCode;
use http::request::Parts;

use crate::claims::MeinGptUser;
use crate::error::AuthError;
use crate::guard::{MISSING_LAYER, missing_layer};
use crate::layer::AuthContext;

/// Why [`MeinGptUser`] could not be extracted.
pub struct AuthRejection {
    kind: RejectionKind,
}

enum RejectionKind {
    MissingLayer,
    Unauthenticated(AuthContext),
}

impl AuthRejection {
    /// The status this rejection answers with (`401`, or `500` without the layer).
    pub fn status(&self) -> StatusCode {
        match &self.kind {
            RejectionKind::MissingLayer => StatusCode::INTERNAL_SERVER_ERROR,
            RejectionKind::Unauthenticated(_) => StatusCode::UNAUTHORIZED,
        }
    }

    /// A human-readable reason.
    pub fn body_text(&self) -> String {
        match &self.kind {
            RejectionKind::MissingLayer => MISSING_LAYER.to_owned(),
            RejectionKind::Unauthenticated(_) => AuthError::MissingToken.to_string(),
        }
    }
}

impl fmt::Debug for AuthRejection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AuthRejection")
            .field("status", &self.status())
            .finish()
    }
}

impl fmt::Display for AuthRejection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.body_text())
    }
}

impl std::error::Error for AuthRejection {}

impl IntoResponse for AuthRejection {
    fn into_response(self) -> Response {
        tracing::trace!(
            target: "meingpt_auth::extract",
            status = self.status().as_u16(),
            "MeinGptUser extractor rejected the request"
        );
        match self.kind {
            RejectionKind::MissingLayer => missing_layer(),
            RejectionKind::Unauthenticated(context) => context.reject(&AuthError::MissingToken),
        }
    }
}

fn context(parts: &Parts) -> Result<&AuthContext, AuthRejection> {
    parts.extensions.get::<AuthContext>().ok_or(AuthRejection {
        kind: RejectionKind::MissingLayer,
    })
}

impl<S: Send + Sync> FromRequestParts<S> for MeinGptUser {
    type Rejection = AuthRejection;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        let context = context(parts)?;
        parts
            .extensions
            .get::<MeinGptUser>()
            .cloned()
            .ok_or_else(|| AuthRejection {
                kind: RejectionKind::Unauthenticated(context.clone()),
            })
    }
}

impl<S: Send + Sync> OptionalFromRequestParts<S> for MeinGptUser {
    type Rejection = AuthRejection;

    async fn from_request_parts(
        parts: &mut Parts,
        _state: &S,
    ) -> Result<Option<Self>, Self::Rejection> {
        context(parts)?;
        Ok(parts.extensions.get::<MeinGptUser>().cloned())
    }
}

impl IntoResponse for AuthError {
    /// Renders with the default realm `meingpt`; prefer
    /// [`MeinGptAuth::reject`](crate::MeinGptAuth::reject), which uses the
    /// configured one.
    fn into_response(self) -> Response {
        self.to_response("meingpt")
    }
}

//! Axum extractors: [`MeinGptUser`], `Option<MeinGptUser>`, and
//! [`Claims<T>`] for your own claims type.
//!
//! The auth layer does the verifying; the extractors read its result.
//!
//! - `MeinGptUser`: the authenticated user, or `401` when the route is behind
//!   [`MeinGptAuth::optional_layer`](crate::MeinGptAuth::optional_layer) and
//!   no token was sent.
//! - `Option<MeinGptUser>`: `None` for anonymous requests (a bad token was
//!   already rejected by the layer).
//! - `Claims<T>`: the verified token's claims deserialized into `T`; a token
//!   whose claims do not fit `T` is `401 invalid_token`.
//! - Any of them without the layer: `500` with a message that names the layer.
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
use crate::error::{AuthError, InvalidToken};
use crate::guard::{MISSING_LAYER, missing_layer};
use crate::layer::AuthContext;
use serde::de::DeserializeOwned;

/// Why [`MeinGptUser`] could not be extracted.
pub struct AuthRejection {
    kind: RejectionKind,
}

enum RejectionKind {
    MissingLayer,
    Refused(AuthError, AuthContext),
}

impl AuthRejection {
    /// The status this rejection answers with (`401`, or `500` without the layer).
    pub fn status(&self) -> StatusCode {
        match &self.kind {
            RejectionKind::MissingLayer => StatusCode::INTERNAL_SERVER_ERROR,
            RejectionKind::Refused(error, _) => error.status(),
        }
    }

    /// A human-readable reason.
    pub fn body_text(&self) -> String {
        match &self.kind {
            RejectionKind::MissingLayer => MISSING_LAYER.to_owned(),
            RejectionKind::Refused(error, _) => error.to_string(),
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
            RejectionKind::Refused(error, context) => context.reject(&error),
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
                kind: RejectionKind::Refused(AuthError::MissingToken, context.clone()),
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

/// The verified token's claims as your own type `T`.
///
/// ```
/// use meingpt_auth::Claims;
///
/// #[derive(serde::Deserialize)]
/// struct MyClaims {
///     sub: String,
///     tenant: String,
/// }
///
/// async fn handler(Claims(claims): Claims<MyClaims>) -> String {
///     format!("{} of {}", claims.sub, claims.tenant)
/// }
/// # let _ = handler;
/// ```
#[derive(Debug, Clone)]
pub struct Claims<T>(pub T);

impl<S, T> FromRequestParts<S> for Claims<T>
where
    S: Send + Sync,
    T: DeserializeOwned,
{
    type Rejection = AuthRejection;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        let context = context(parts)?;
        let refused = |error| AuthRejection {
            kind: RejectionKind::Refused(error, context.clone()),
        };
        let user = parts
            .extensions
            .get::<MeinGptUser>()
            .ok_or_else(|| refused(AuthError::MissingToken))?;
        user.claims_as::<T>()
            .map(Claims)
            .map_err(|_| refused(AuthError::InvalidToken(InvalidToken::InvalidClaim)))
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

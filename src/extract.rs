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

use axum::body::Body;
use axum::extract::{FromRequestParts, OptionalFromRequestParts};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use http::StatusCode;
use http::request::Parts;

use crate::claims::MeinGptUser;
use crate::error::{AuthError, InvalidToken};
use crate::layer::AuthContext;
use crate::rejection::{MISSING_LAYER, is_grpc, missing_layer};
use serde::de::DeserializeOwned;

/// Why [`MeinGptUser`] (or [`Claims`]) could not be extracted.
///
/// Match on it to tell a server misconfiguration from a refused user:
///
/// ```
/// use meingpt_auth::{AuthRejection, MeinGptUser};
///
/// async fn me(user: Result<MeinGptUser, AuthRejection>) -> String {
///     match user {
///         Ok(user) => user.sub().to_owned(),
///         Err(AuthRejection::MissingAuthLayer(_)) => "misconfigured".into(),
///         Err(AuthRejection::Refused(refused)) => refused.error().to_string(),
///         Err(other) => other.body_text(),
///     }
/// }
/// # let _ = me;
/// ```
#[derive(Debug)]
#[non_exhaustive]
pub enum AuthRejection {
    /// No auth layer ran before the extractor (nor
    /// [`MeinGptAuth::attach_user`](crate::MeinGptAuth::attach_user)): `500`.
    MissingAuthLayer(MissingAuthLayer),
    /// The request is not authenticated as the extractor requires (no
    /// token behind an optional layer, or claims that do not fit `T`).
    Refused(Refused),
}

impl AuthRejection {
    /// The status this rejection answers with (`401`, or `500` without the layer).
    pub fn status(&self) -> StatusCode {
        match self {
            Self::MissingAuthLayer(rejection) => rejection.status(),
            Self::Refused(rejection) => rejection.status(),
        }
    }

    /// A human-readable reason.
    pub fn body_text(&self) -> String {
        match self {
            Self::MissingAuthLayer(rejection) => rejection.body_text(),
            Self::Refused(rejection) => rejection.body_text(),
        }
    }
}

/// The auth layer is not applied outside the route: `500`, a server
/// misconfiguration. See [`AuthRejection`].
#[derive(Debug)]
pub struct MissingAuthLayer {
    grpc: bool,
}

impl MissingAuthLayer {
    /// `500 Internal Server Error` (HTTP `200` with `grpc-status: 13` for a gRPC call).
    pub fn status(&self) -> StatusCode {
        StatusCode::INTERNAL_SERVER_ERROR
    }

    /// The message naming the missing layer.
    pub fn body_text(&self) -> String {
        MISSING_LAYER.to_owned()
    }
}

/// The request was not authenticated as the extractor requires. See
/// [`AuthRejection`].
#[derive(Debug)]
pub struct Refused {
    error: AuthError,
    response: Box<Response<Bytes>>,
}

impl Refused {
    /// Why the request was refused.
    pub fn error(&self) -> &AuthError {
        &self.error
    }

    /// The status of the refusal (`401` for a missing token).
    pub fn status(&self) -> StatusCode {
        self.error.status()
    }

    /// The refusal's fixed description.
    pub fn body_text(&self) -> String {
        self.error.to_string()
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
        let response = match self {
            Self::MissingAuthLayer(rejection) => missing_layer(rejection.grpc),
            Self::Refused(rejection) => *rejection.response,
        };
        response.map(Body::from)
    }
}

fn context(parts: &Parts) -> Result<&AuthContext, AuthRejection> {
    parts.extensions.get::<AuthContext>().ok_or_else(|| {
        let grpc = is_grpc(&parts.headers);
        AuthRejection::MissingAuthLayer(MissingAuthLayer { grpc })
    })
}

fn refused(context: &AuthContext, error: AuthError, parts: &Parts) -> AuthRejection {
    let response = Box::new(context.reject(&error, parts));
    AuthRejection::Refused(Refused { error, response })
}

impl<S: Send + Sync> FromRequestParts<S> for MeinGptUser {
    type Rejection = AuthRejection;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        let context = context(parts)?;
        match parts.extensions.get::<MeinGptUser>() {
            Some(user) => Ok(user.clone()),
            None => Err(refused(context, AuthError::MissingToken, parts)),
        }
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
        let Some(user) = parts.extensions.get::<MeinGptUser>() else {
            return Err(refused(context, AuthError::MissingToken, parts));
        };
        user.claims_as::<T>().map(Claims).map_err(|_| {
            let error = AuthError::InvalidToken(InvalidToken::InvalidClaim);
            refused(context, error, parts)
        })
    }
}

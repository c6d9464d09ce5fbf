//! How refused requests are answered, and how an application answers them
//! its own way.
//!
//! The auth layer, the guards and the extractors all answer through one
//! renderer: RFC 6750 with the configured realm (see [`crate::error`]), or
//! the gRPC error shape for requests with `content-type: application/grpc…`.
//! An application that wants its own pages (an HTML page for a browser
//! route, `application/problem+json` per RFC 9457 for an API) sets one hook
//! with [`AuthLayer::render_rejections_with`](crate::AuthLayer::render_rejections_with);
//! the guards and extractors behind that layer use it too.
//!
//! The hook receives a [`Rejection`]: the [`AuthError`], the request's head,
//! and the default response. [`Rejection::response`] keeps the default's
//! status, `WWW-Authenticate` challenge, `Retry-After` and `Cache-Control`
//! and replaces only the body and its content type, so the protocol stays
//! right unless the hook builds a response from scratch on purpose.
//!
//! # Reading the verdict outside the layer
//!
//! Every refusal the layer, a guard or an extractor answers carries its
//! [`AuthError`] in the response's extensions: with the default rendering,
//! in the gRPC shape (whose HTTP status is `200`), and when a hook renders
//! the response, even one built from scratch. An access log or a metrics
//! layer around the auth layer matches on it rather than on the status
//! code, which other layers (a body limit, a proxy's `502`) answer with too.
//! A response without it was not refused by this crate (the `500` for a
//! missing auth layer is a server misconfiguration and carries none).
//!
//! ```
//! use axum::{Router, routing::get, body::Body};
//! use http::{Request, StatusCode};
//! use meingpt_auth::{AuthError, InvalidRequest, MeinGptAuth};
//! use tower::ServiceExt;
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() {
//! let auth = MeinGptAuth::builder().organization("clx0987654321").build().unwrap();
//! let app = Router::new().route("/", get(|| async { "hello" })).layer(auth.layer());
//!
//! let request = Request::get("/").header("authorization", "Bearer ").body(Body::empty()).unwrap();
//! let response = app.oneshot(request).await.unwrap();
//! let outcome = match response.extensions().get::<AuthError>() {
//!     None => "served",
//!     Some(AuthError::MissingToken | AuthError::InvalidToken(_)) => "unauthenticated",
//!     Some(AuthError::InvalidRequest(InvalidRequest::EmptyToken)) => "empty token",
//!     Some(error) => error.error_code(),
//! };
//! assert_eq!(outcome, "empty token");
//! assert_eq!(response.status(), StatusCode::BAD_REQUEST);
//! # }
//! ```
//!
//! # Example
//!
//! ```
//! use axum::{Router, routing::get, body::Body};
//! use http::{Request, StatusCode, header};
//! use meingpt_auth::MeinGptAuth;
//! use tower::ServiceExt;
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() {
//! let auth = MeinGptAuth::builder().organization("clx0987654321").build().unwrap();
//! let layer = auth.layer().render_rejections_with(|rejection| {
//!     let page = format!("<h1>Please sign in</h1><p>{}</p>", rejection.error());
//!     rejection.response("text/html; charset=utf-8", page)
//! });
//! let app = Router::new().route("/", get(|| async { "hello" })).layer(layer);
//!
//! let response = app.oneshot(Request::new(Body::empty())).await.unwrap();
//! assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
//! assert_eq!(response.headers()[header::WWW_AUTHENTICATE], "Bearer realm=\"meingpt\"");
//! assert_eq!(response.headers()[header::CONTENT_TYPE], "text/html; charset=utf-8");
//! # }
//! ```

use std::fmt;
use std::sync::Arc;

use bytes::Bytes;
use http::request::Parts;
use http::{HeaderValue, Response, StatusCode, header};

pub(crate) use crate::error::is_grpc;
use crate::error::{AuthError, Challenge, GRPC_INTERNAL, grpc_error};

/// A refused request about to be answered: what went wrong, the request it
/// answers, and the default response. See the [module docs](self).
///
/// Whatever response the hook returns, the crate puts the [`AuthError`]
/// into its extensions before sending it.
pub struct Rejection<'a> {
    error: &'a AuthError,
    request: &'a Parts,
    challenge: Challenge<'a>,
}

impl<'a> Rejection<'a> {
    /// Why the request is refused.
    pub fn error(&self) -> &'a AuthError {
        self.error
    }

    /// The head of the refused request (method, URI, headers, extensions).
    pub fn request(&self) -> &'a Parts {
        self.request
    }

    /// The realm named in the `WWW-Authenticate` challenge.
    pub fn realm(&self) -> &'a str {
        self.challenge.realm()
    }

    /// The protected resource metadata URL the challenge names
    /// (`resource_metadata`, RFC 9728), when one is configured.
    pub fn resource_metadata(&self) -> Option<&'a str> {
        self.challenge.resource_metadata_url()
    }

    /// The scopes the challenge names as enough (`scope`, RFC 6750 §3),
    /// space-separated: a scope guard's refusal.
    pub fn scope(&self) -> Option<&'a str> {
        self.challenge.scopes()
    }

    /// Everything the `WWW-Authenticate` challenge names besides the
    /// error.
    pub fn challenge(&self) -> Challenge<'a> {
        self.challenge
    }

    /// Whether the request is a gRPC call (`content-type: application/grpc…`);
    /// such a call needs the gRPC error shape that
    /// [`default_response`](Self::default_response) gives it.
    pub fn is_grpc(&self) -> bool {
        is_grpc(&self.request.headers)
    }

    /// The response the crate sends without a hook: RFC 6750 (status,
    /// challenge, JSON body) or, for a gRPC call, the gRPC error shape.
    pub fn default_response(&self) -> Response<Bytes> {
        if self.is_grpc() {
            self.error.to_grpc_response(self.challenge)
        } else {
            self.error.to_response(self.challenge)
        }
    }

    /// The RFC 6750 response with `body` of `content_type` instead of the
    /// JSON one: status, `WWW-Authenticate`, `Retry-After` and
    /// `Cache-Control: no-store` stay as the protocol asks.
    pub fn response(&self, content_type: &'static str, body: impl Into<Bytes>) -> Response<Bytes> {
        let mut response: Response<Bytes> = self.error.to_response(self.challenge);
        *response.body_mut() = body.into();
        response
            .headers_mut()
            .insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
        response
    }
}

impl fmt::Debug for Rejection<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Rejection")
            .field("error", self.error)
            .field("method", &self.request.method)
            .field("uri", &self.request.uri)
            .field("challenge", &self.challenge)
            .finish_non_exhaustive()
    }
}

type Hook = dyn Fn(&Rejection<'_>) -> Response<Bytes> + Send + Sync;

/// Renders rejections: the default one, or the application's hook.
#[derive(Clone, Default)]
pub(crate) struct Renderer {
    hook: Option<Arc<Hook>>,
}

impl Renderer {
    pub(crate) fn with_hook(
        hook: impl Fn(&Rejection<'_>) -> Response<Bytes> + Send + Sync + 'static,
    ) -> Self {
        Self {
            hook: Some(Arc::new(hook)),
        }
    }

    /// The one place a refused request's answer is made.
    pub(crate) fn render(
        &self,
        error: &AuthError,
        request: &Parts,
        challenge: Challenge<'_>,
    ) -> Response<Bytes> {
        tracing::debug!(
            target: "meingpt_auth::rejection",
            status = error.status().as_u16(),
            error = error.error_code(),
            "request rejected"
        );
        let rejection = Rejection {
            error,
            request,
            challenge,
        };
        match &self.hook {
            // The hook may build its response from scratch; the verdict
            // travels with it all the same.
            Some(hook) => {
                let mut response = hook(&rejection);
                response.extensions_mut().insert(error.clone());
                response
            }
            None => rejection.default_response(),
        }
    }
}

impl fmt::Debug for Renderer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Renderer")
            .field("hook", &self.hook.is_some())
            .finish()
    }
}

/// What a guard or extractor says when no auth layer ran before it.
pub(crate) const MISSING_LAYER: &str = "Can't find the authenticated user. Is `MeinGptAuth::layer()` (or `optional_layer()`) applied outside this route?";

/// The `500` (or gRPC `INTERNAL`) for a route whose auth layer is missing:
/// a server misconfiguration, so no challenge.
pub(crate) fn missing_layer(grpc: bool) -> Response<Bytes> {
    tracing::error!(
        target: "meingpt_auth::rejection",
        "the user was looked for without the auth layer; apply MeinGptAuth::layer() outside this route"
    );
    if grpc {
        return grpc_error(GRPC_INTERNAL, MISSING_LAYER);
    }
    let mut response = Response::new(Bytes::from_static(MISSING_LAYER.as_bytes()));
    *response.status_mut() = StatusCode::INTERNAL_SERVER_ERROR;
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    response
}

/// Says `Connection: close` on a refusal of an HTTP/1 request that
/// announces a body (`Content-Length` other than 0, or `Transfer-Encoding`).
/// The refusal answers before the body is read, and hyper closes such a
/// connection once the answer is written; saying so keeps a client (an MCP
/// client, whose first `POST` is refused before it signs in) from sending
/// its next request into it.
pub(crate) fn close_if_the_body_stays_unread(request: &Parts, response: &mut Response<Bytes>) {
    let announces_a_body = request.headers.contains_key(header::TRANSFER_ENCODING)
        || request
            .headers
            .get(header::CONTENT_LENGTH)
            .is_some_and(|length| length.as_bytes() != b"0");
    if request.version < http::Version::HTTP_2 && announces_a_body {
        response
            .headers_mut()
            .insert(header::CONNECTION, HeaderValue::from_static("close"));
    }
}

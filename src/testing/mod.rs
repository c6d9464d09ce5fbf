//! A test kit (feature `testing`): [`MockIssuer`] serves a JWKS on
//! `127.0.0.1` and mints tokens with [`TokenBuilder`]; [`MockClock`] is a
//! clock tests move by hand; [`verified_token_count`] and [`key_generation`]
//! show what an authenticator holds right now. With
//! [`MockIssuer::serve_oauth`] the issuer is also a minimal OAuth 2.1
//! authorization server ([`OAuthServer`]), for signing in real OAuth
//! clients, such as the MCP SDKs', end to end.
//!
//! Use it in your own tests to exercise routes behind the auth layer with
//! real, signed tokens and no network beyond loopback.
//!
//! # Example
//!
//! ```
//! use axum::{Router, routing::get, body::Body};
//! use http::{Request, StatusCode};
//! use meingpt_auth::{MeinGptUser, testing::MockIssuer};
//! use tower::ServiceExt;
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() {
//! let issuer = MockIssuer::start().await;
//! let auth = issuer.auth().build().unwrap();
//! let app = Router::new()
//!     .route("/me", get(|user: MeinGptUser| async move { user.sub().to_owned() }))
//!     .layer(auth.layer());
//!
//! let token = issuer.token().sub("user-42").role("admin").sign();
//! let request = Request::get("/me")
//!     .header("x-meingpt-jwt", token)
//!     .body(Body::empty())
//!     .unwrap();
//! let response = app.oneshot(request).await.unwrap();
//! assert_eq!(response.status(), StatusCode::OK);
//! assert_eq!(issuer.fetch_count(), 1);
//! # }
//! ```

mod clock;
mod inspect;
mod issuer;
mod key;
mod oauth;
mod server;
mod token;

pub use clock::MockClock;
pub use inspect::{key_generation, verified_token_count};
pub use issuer::MockIssuer;
pub use oauth::{Grant, OAuthServer};
pub use server::Fault;
pub use token::TokenBuilder;

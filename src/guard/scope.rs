//! Guards on the OAuth scopes the token grants.
//!
//! Scopes come from the `scope` claim (a space-separated string, as RFC 9068
//! access tokens, Keycloak and Auth0 send it) and from Entra ID's `scp`
//! (space-separated as well); an array of strings in either claim is read
//! as one scope per item. See [`MeinGptUser::scopes`](crate::MeinGptUser::scopes).
//! Scopes compare exactly and case-sensitively. meinGPT's own tokens carry
//! no scopes: use these guards with OpenID Connect issuers.
//!
//! # Example
//!
//! ```
//! use axum::{Router, routing::get};
//! use meingpt_auth::{MeinGptAuth, require_all_scopes, require_scope};
//!
//! let auth = MeinGptAuth::oidc("https://login.example.com")
//!     .audience("api://files")
//!     .build()
//!     .unwrap();
//! let app: Router = Router::new()
//!     .route("/files", get(|| async { "files" }).route_layer(require_scope("Files.Read")))
//!     .route(
//!         "/files/share",
//!         get(|| async { "shared" })
//!             .route_layer(require_all_scopes(["Files.Read", "Files.Share"])),
//!     )
//!     .layer(auth.layer());
//! # let _ = app;
//! ```

use super::GuardLayer;

/// Admits users whose token grants `scope`; `403 insufficient_scope`
/// otherwise.
pub fn require_scope(scope: impl Into<String>) -> GuardLayer {
    let scope = scope.into();
    GuardLayer::named("scope", move |user| user.has_scope(&scope))
}

/// Admits users whose token grants at least one of `scopes`.
pub fn require_any_scope<I, T>(scopes: I) -> GuardLayer
where
    I: IntoIterator<Item = T>,
    T: Into<String>,
{
    let scopes: Vec<String> = scopes.into_iter().map(Into::into).collect();
    GuardLayer::named("any scope", move |user| {
        scopes.iter().any(|scope| user.has_scope(scope))
    })
}

/// Admits users whose token grants every one of `scopes`.
pub fn require_all_scopes<I, T>(scopes: I) -> GuardLayer
where
    I: IntoIterator<Item = T>,
    T: Into<String>,
{
    let scopes: Vec<String> = scopes.into_iter().map(Into::into).collect();
    GuardLayer::named("all scopes", move |user| {
        scopes.iter().all(|scope| user.has_scope(scope))
    })
}

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
/// otherwise, naming the scope in the challenge (`scope="…"`).
pub fn require_scope(scope: impl Into<String>) -> GuardLayer {
    let scope = scope.into();
    let named = [scope.clone()];
    GuardLayer::named("scope", move |user| user.has_scope(&scope)).challenge_scope(named)
}

/// Admits users whose token grants at least one of `scopes`; a refusal
/// names the first (list the narrowest first), which is enough.
pub fn require_any_scope<I, T>(scopes: I) -> GuardLayer
where
    I: IntoIterator<Item = T>,
    T: Into<String>,
{
    let scopes: Vec<String> = scopes.into_iter().map(Into::into).collect();
    let first: Vec<String> = scopes.iter().take(1).cloned().collect();
    GuardLayer::named("any scope", move |user| {
        scopes.iter().any(|scope| user.has_scope(scope))
    })
    .challenge_scope(first)
}

/// Admits users whose token grants every one of `scopes`; a refusal names
/// them all.
pub fn require_all_scopes<I, T>(scopes: I) -> GuardLayer
where
    I: IntoIterator<Item = T>,
    T: Into<String>,
{
    let scopes: Vec<String> = scopes.into_iter().map(Into::into).collect();
    let named = scopes.clone();
    GuardLayer::named("all scopes", move |user| {
        scopes.iter().all(|scope| user.has_scope(scope))
    })
    .challenge_scope(named)
}

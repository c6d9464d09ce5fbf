//! Accept only the users that meinGPT — or any OpenID Connect / JWT issuer —
//! vouches for, in any Axum or Tower service.
//!
//! meinGPT forwards the signed-in user as an RS256 JWT: in the
//! `X-meinGPT-JWT` header to custom MCP servers, and as `Authorization:
//! Bearer` from Custom AI Apps. This crate verifies that token against the
//! organization's JWKS (cached, single-flight, stale-if-error), refuses every
//! known JWT attack, and hands your handlers a typed [`MeinGptUser`].
//!
//! # Quick start
//!
//! ```
//! use axum::{Json, Router, routing::get};
//! use meingpt_auth::{MeinGptAuth, MeinGptUser, Role, require_role, require_team_id};
//!
//! async fn me(user: MeinGptUser) -> Json<MeinGptUser> {
//!     Json(user)
//! }
//!
//! # fn main() -> Result<(), meingpt_auth::ConfigError> {
//! let auth = MeinGptAuth::builder()
//!     .organization("clx0987654321") // aud; JWKS at {issuer}/api/custom-apps/v1/jwks/{org}
//!     .build()?; // or MeinGptAuth::from_env()?
//!
//! let app: Router = Router::new()
//!     .route("/me", get(me))
//!     .route("/admin", get(|| async { "admins only" }).route_layer(require_role(Role::Admin)))
//!     .route(
//!         "/engineering",
//!         // By id: team names are neither unique nor stable.
//!         get(|| async { "engineers only" }).route_layer(require_team_id("team-eng")),
//!     )
//!     .layer(auth.layer());
//! # let _ = app;
//! # Ok(())
//! # }
//! ```
//!
//! # Configuration from the environment
//!
//! [`MeinGptAuth::from_env`] picks the issuers from what is set; with both
//! `MEINGPT_ORG_ID` and `AUTH_TYPE` it accepts tokens from either (see
//! [`MeinGptAuth::from_issuers`]):
//!
//! | variable | meaning |
//! | --- | --- |
//! | `MEINGPT_ORG_ID` | organization id(s), comma separated; configures meinGPT |
//! | `MEINGPT_ISSUER` | instance origin; default `https://app.meingpt.com` |
//! | `MEINGPT_JWKS_URL` | override of the derived JWKS URL (single organization) |
//! | `AUTH_TYPE` | `jwt_oidc` or `jwt_local` (OpenGPTs names) |
//! | `JWT_ISS`, `JWT_AUD` | issuer and audience(s), comma separated |
//! | `JWT_ALG` | `jwt_local`: the algorithm; `jwt_oidc`: optional allow-list |
//! | `JWT_DECODE_KEY_B64` | `jwt_local`: base64 (standard or URL-safe) of a PEM public key, or of the raw secret for HS* |
//! | `JWT_ROLE_CLAIM` | `jwt_oidc`/`jwt_local`: the claim that holds roles (default `roles`; meinGPT mode always reads `role`) |
//! | `MCP_RESOURCE_URL` | the protected resource for OAuth clients such as MCP clients (see [`resource`]); without `JWT_AUD`, the `AUTH_TYPE` issuer's tokens must be issued for it |
//! | `MCP_SCOPES` | its `scopes_supported`, space or comma separated |
//!
//! Anything invalid fails with one line naming the variable; so does a
//! variable that would have no effect in the chosen mode (`JWT_*` without
//! `AUTH_TYPE`, `MEINGPT_JWKS_URL` with several organizations, …).
//!
//! The README has recipes for a production `main` (fail fast, logging,
//! graceful shutdown), mixing public, optional and required routes, and
//! testing your own service with [`testing::MockIssuer`].
//!
//! # Roles, teams, e-mail and scopes
//!
//! - **Roles** come from `role` (meinGPT) or `roles` (other issuers), or the
//!   claim [`MeinGptAuthBuilder::role_claim`] names, also as a dotted path
//!   into nested objects (Keycloak's `realm_access.roles`). A string is one
//!   role and an array one role per item, compared code point for code
//!   point: `"member,admin"` and `" admin"` are not `admin`. Comma splitting
//!   ([`roles_comma_separated`](MeinGptAuthBuilder::roles_comma_separated))
//!   and case-insensitive matching
//!   ([`roles_case_insensitive`](MeinGptAuthBuilder::roles_case_insensitive))
//!   happen only when configured.
//! - **Teams**: guard by id ([`require_team_id`]); names are neither unique
//!   nor stable.
//! - **E-mail**: [`MeinGptUser::email`] is the `email` claim only, none when
//!   `email_verified` is `false`; falling back to `upn` /
//!   `preferred_username` is an explicit option
//!   ([`email_fallback`](MeinGptAuthBuilder::email_fallback)) that must not
//!   be used to authorize by domain.
//! - **Scopes** (`scope`, Entra's `scp`): [`require_scope`],
//!   [`require_any_scope`], [`require_all_scopes`]; their `403` names the
//!   scopes that would be enough (`scope="…"`).
//! - **Access tokens** of OpenID Connect issuers can be held to a profile,
//!   off by default: [`require_token_type`](MeinGptAuthBuilder::require_token_type)
//!   (`at+jwt`, RFC 9068), [`authorized_party`](MeinGptAuthBuilder::authorized_party)
//!   (`azp`) and [`max_token_lifetime`](MeinGptAuthBuilder::max_token_lifetime).
//!
//! # Responses
//!
//! Rejections follow RFC 6750 §3 (see [`AuthError`]): `401` with a bare
//! `WWW-Authenticate: Bearer realm="…"` when no token was sent, `401
//! invalid_token` for a bad one, `400 invalid_request` for malformed
//! credentials, `403 insufficient_scope` from guards, and `503` with
//! `Retry-After` when the issuer's keys cannot be had. gRPC calls get the
//! gRPC error shape instead (`grpc-status` 16, 7 or 14); an application
//! renders refusals its own way with one hook (see [`rejection`]).
//!
//! # MCP clients and other OAuth clients
//!
//! A service that standard OAuth clients sign in to (the MCP
//! specification's authorization, say) configures a [`ProtectedResource`]:
//! its metadata (RFC 9728) is served by [`ResourceMetadata::router`] or
//! [`ResourceMetadata::layer`], every challenge names it
//! (`resource_metadata="…"`), and issuers with
//! [`resource_audience`](MeinGptAuthBuilder::resource_audience) accept only
//! tokens issued for the resource (RFC 8707). See [`resource`].
//!
//! The layer and the guards work in front of any Tower service whose body
//! is an `http_body::Body` of `Bytes` (axum, tonic, rmcp, hyper); their
//! responses carry [`AuthBody`].
//!
//! # Custom AI Apps
//!
//! A Custom AI App must only be embeddable by meinGPT: wrap its routes in
//! [`FrameAncestorsLayer`] (`Content-Security-Policy: frame-ancestors
//! https://app.meingpt.com` and `Referrer-Policy: no-referrer`).
//!
//! # Features
//!
//! | feature | enables |
//! | --- | --- |
//! | `axum` (default) | the [`MeinGptUser`] extractors and their [`AuthRejection`] |
//! | `metrics` | counters, a histogram and a gauge through the `metrics` facade (the README lists them) |
//! | `testing` | [`testing::MockIssuer`]: a JWKS on loopback and a token builder, for your tests; optionally a minimal OAuth 2.1 authorization server ([`testing::OAuthServer`]) |
//!
//! # Architecture
//!
//! A request's path through the modules:
//!
//! 1. [`layer`]: [`Auth`] takes the request and asks [`MeinGptAuth`]
//!    (`src/auth.rs`) to authenticate its headers.
//! 2. [`token`]: the configured [`TokenSource`]s find the token
//!    (`X-meinGPT-JWT`, then `Authorization: Bearer`).
//! 3. `verify` (`src/verify/`): with several issuers, the token's `iss`
//!    picks one; then size cap, strict base64url, the JOSE header and its
//!    `alg`, the signature, the registered claims and the access-token
//!    profile (`profile.rs`); `cache.rs` is the verified-token cache. JSON
//!    is read by `json` (`src/json.rs`), which refuses duplicate members,
//!    into the typed documents of `jose` (`src/jose.rs`).
//! 4. `jwks` (`src/jwks/`): the issuer's keys — `fetch.rs` (HTTP policy:
//!    timeout, size cap, no redirects, HTTPS), `document.rs` (a JWKS or
//!    discovery document into keys), `cache.rs` (one snapshot per key
//!    source: single flight, cooldown, stale-if-error; a lookup never
//!    waits, it answers with the key, a refusal or a wait for the one fetch
//!    in flight, after which the layer looks again); `keys`
//!    (`src/keys/`) holds each key ready for aws-lc-rs, `configured.rs`
//!    the one fixed in the configuration.
//! 5. [`claims`]: the verified payload becomes a [`MeinGptUser`] (roles,
//!    teams, e-mail, scopes; `src/claims/parse.rs` reads them).
//! 6. [`guard`] ([`require_role`], …) and [`extract`] ([`MeinGptUser`] in a
//!    handler) read the user the layer stored in the request.
//!
//! A refusal is an [`AuthError`] ([`error`]), rendered once by
//! [`rejection`] into a response with an [`AuthBody`] ([`body`]).
//! [`MeinGptAuth`] has one home, `src/auth.rs` (the type and what it does
//! at run time), and two extension points beside what they make: its
//! constructors (`builder`, `oidc`, `static_key`, `from_issuers`,
//! `from_env`) in `src/config/mod.rs`, its layers (`layer`,
//! `optional_layer`, `attach_user`) in `src/layer.rs`.
//! Configuration lives in [`config`]: the builder (`builder.rs`), its
//! checks (`build.rs`) and the environment variables (`env.rs`). The
//! policy for URLs keys are fetched from and origins that may frame an app
//! (`https://`, or `http://` to loopback only) is a leaf of its own,
//! `url_policy` (`src/url_policy.rs`), applied by `config`, `jwks` (to a
//! discovered `jwks_uri`) and [`frame`]. [`Clock`] is the time source,
//! [`frame`] the `frame-ancestors` layer for Custom AI Apps, [`resource`]
//! the protected resource metadata (RFC 9728) that challenges name and its
//! router and layer (`serve.rs`), [`testing`] the test kit (its OAuth
//! authorization server in `testing/oauth/`).
//!
//! Imports run one way: the leaves (`token`, `json`, `keys`, `claims`,
//! `error`, `clock`, `url_policy`) import nothing above them, and no module
//! of the pipeline imports the top (`layer`, `guard`, `extract`); the
//! repository's `scripts/module_cycles.py` checks that no cycle creeps in,
//! among files and among top-level modules (a folder counts as one).

#![forbid(unsafe_code)]
#![warn(missing_docs, rust_2018_idioms, unreachable_pub)]
#![cfg_attr(docsrs, feature(doc_cfg))]

mod auth;
pub mod body;
pub mod claims;
mod clock;
pub mod config;
pub mod error;
#[cfg(feature = "axum")]
pub mod extract;
pub mod frame;
mod jose;
mod json;
mod jwks;
mod keys;
pub mod layer;
mod metrics;
pub mod rejection;
pub mod resource;
pub mod token;
mod url_policy;
mod verify;

pub mod guard;
#[cfg(feature = "testing")]
pub mod testing;

pub use auth::MeinGptAuth;
pub use body::AuthBody;
pub use claims::{MeinGptUser, Role, Team};
pub use clock::{Clock, SystemClock};
pub use config::{ConfigError, DEFAULT_ISSUER, MeinGptAuthBuilder, StaticKey};
pub use error::{AuthError, InvalidRequest, InvalidToken};
#[cfg(feature = "axum")]
pub use extract::{AuthRejection, Claims, MissingAuthLayer, Refused};
pub use frame::{FrameAncestors, FrameAncestorsLayer, InvalidOrigin, frame_ancestors};
pub use guard::{
    GuardLayer, require_all_scopes, require_any_role, require_any_scope, require_role,
    require_scope, require_team_id, require_team_name, require_user,
};
/// The signing algorithms, as the `jsonwebtoken` crate names them.
///
/// Re-exported rather than mirrored: the configuration, the test kit and
/// applications that also sign or parse tokens with `jsonwebtoken` share
/// one type. `jsonwebtoken` is therefore a public dependency: a release of
/// this crate that moves to an incompatible `jsonwebtoken` is a breaking
/// release. The crate uses nothing else of `jsonwebtoken` at run time (it
/// verifies with aws-lc-rs itself) and installs no `jsonwebtoken` crypto
/// provider, so a host application picks its own.
pub use jsonwebtoken::Algorithm;
pub use jwks::KeysError;
pub use layer::{Auth, AuthLayer};
pub use resource::{ProtectedResource, ResourceMetadata};
pub use token::{MEINGPT_JWT_HEADER, TokenSource};

/// Entry points for the fuzz targets in `fuzz/` (built only by `cargo fuzz`).
#[cfg(fuzzing)]
#[doc(hidden)]
pub mod fuzzing {
    /// Parses `bytes` as a JWKS for every asymmetric algorithm.
    pub fn parse_jwks(bytes: &[u8]) -> usize {
        crate::jwks::parse_jwks(bytes, &crate::keys::ASYMMETRIC)
            .map(|(keys, _)| keys.len())
            .unwrap_or(0)
    }
}

/// README.md's code, compiled (and, where it can, run) by `cargo test --doc`.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
mod readme {}

/// The response futures of this crate's services.
pub mod future {
    /// The future of the guards and of `ServeResourceMetadata`.
    pub use crate::body::ResponseFuture as GuardResponseFuture;
    pub use crate::layer::ResponseFuture;
}

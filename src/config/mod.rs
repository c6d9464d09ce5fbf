//! Configuration: [`MeinGptAuth`] and its [`MeinGptAuthBuilder`], from code or
//! from the environment.
//!
//! Three kinds of issuer, one layer:
//!
//! - **meinGPT** ([`MeinGptAuth::builder`]): needs only the organization id
//!   (or several); keys from `{issuer}/api/custom-apps/v1/jwks/{organization}`.
//! - **OpenID Connect** ([`MeinGptAuth::oidc`]): keys from the `jwks_uri` of
//!   `{issuer}/.well-known/openid-configuration`.
//! - **A static key** ([`MeinGptAuth::static_key`]): a PEM public key or an
//!   HMAC secret, as OpenGPTs' `jwt_local` configures it.
//!
//! Several of them in one authenticator: [`MeinGptAuth::from_issuers`]; the
//! token's `iss` picks the configuration.
//!
//! Everything else has a safe default:
//!
//! | setting | default |
//! | --- | --- |
//! | issuer (`iss`) | `https://app.meingpt.com` (meinGPT) |
//! | algorithms | meinGPT: `RS256` only; OIDC: the asymmetric ones the discovery document lists; static: the key's |
//! | role claim | `role` (meinGPT), `roles` (others); a string is one role, an array one role per item; exact, case-sensitive matching; no comma splitting |
//! | e-mail | the `email` claim only; none when `email_verified` is `false` |
//! | access-token profile (`typ`, `azp`, maximum lifetime) | not checked |
//! | token sources | `X-meinGPT-JWT`, then `Authorization: Bearer` |
//! | leeway for `exp`/`nbf`/`iat`/`auth_time` | 30 s |
//! | token size cap | 16 KiB |
//! | `auth_time` max age | none |
//! | verified-token cache | 10,000 tokens and 64 MiB |
//! | JWKS TTL / stale limit / cooldown | 10 min / 6 h / 30 s |
//! | JWKS timeout / retry after failure / size cap | 5 s / 5 s / 256 KiB |

//!
//! Where each part lives: the constructors of [`MeinGptAuth`] (`builder`,
//! `oidc`, `static_key`, `from_issuers`, `from_env`) here, the builder in
//! `builder.rs`, its checks and `build()` in `build.rs`, the environment
//! variables in `env.rs`. The
//! policy for URLs keys are fetched from (`https://`, or `http://` to
//! loopback only) is the crate's `src/url_policy.rs`, which the key fetching
//! (`jwks`) applies to discovered URLs too.
//!
//! [`MeinGptAuth`]: crate::MeinGptAuth
//! [`MeinGptAuth::builder`]: crate::MeinGptAuth::builder
//! [`MeinGptAuth::oidc`]: crate::MeinGptAuth::oidc
//! [`MeinGptAuth::static_key`]: crate::MeinGptAuth::static_key
//! [`MeinGptAuth::from_issuers`]: crate::MeinGptAuth::from_issuers

mod build;
mod builder;
mod env;

use std::fmt;

use crate::auth::MeinGptAuth;
use crate::resource::{ProtectedResource, ResourceMetadata};
use builder::Mode;
pub use builder::{MeinGptAuthBuilder, StaticKey};
pub use env::ENV_VARIABLES;

/// meinGPT's public instance; the default issuer.
pub const DEFAULT_ISSUER: &str = "https://app.meingpt.com";

/// The constructors: where every [`MeinGptAuth`] comes from. Each gives a
/// builder, or checks builders (`build.rs`) or the environment (`env.rs`)
/// into an authenticator; what it does then is in `src/auth.rs`.
impl MeinGptAuth {
    /// A builder with the meinGPT preset.
    pub fn builder() -> MeinGptAuthBuilder {
        MeinGptAuthBuilder::default()
    }

    /// A builder for an OpenID Connect issuer (Authgear, Keycloak, Auth0, …):
    /// keys come from the `jwks_uri` of `{issuer}/.well-known/openid-configuration`,
    /// whose `issuer` must equal `issuer` exactly. Set the accepted
    /// audiences with [`MeinGptAuthBuilder::audience`].
    ///
    /// ```
    /// use meingpt_auth::MeinGptAuth;
    ///
    /// let auth = MeinGptAuth::oidc("https://example.authgear.cloud")
    ///     .audience("my-api")
    ///     .build()
    ///     .unwrap();
    /// # let _ = auth;
    /// ```
    pub fn oidc(issuer: impl Into<String>) -> MeinGptAuthBuilder {
        MeinGptAuthBuilder {
            mode: Mode::Oidc,
            issuer: issuer.into(),
            ..MeinGptAuthBuilder::default()
        }
    }

    /// A builder for tokens signed with one known key (OpenGPTs'
    /// `jwt_local`). Set the accepted audiences with
    /// [`MeinGptAuthBuilder::audience`].
    pub fn static_key(issuer: impl Into<String>, key: StaticKey) -> MeinGptAuthBuilder {
        MeinGptAuthBuilder {
            mode: Mode::Static(key),
            issuer: issuer.into(),
            ..MeinGptAuthBuilder::default()
        }
    }

    /// One authenticator for several issuers, such as meinGPT beside the
    /// company's own identity provider: a token's `iss`, compared exactly
    /// before anything else is trusted, picks the configuration that
    /// verifies it, with that configuration's keys, audiences, algorithms,
    /// leeway and claim rules (role claim, role matching, e-mail fallback,
    /// access-token profile, `max_auth_age`), and nobody else's. A token
    /// naming none of the issuers is refused (`401 invalid_token`, described
    /// like an unknown key) without any key fetch.
    /// [`MeinGptUser::issuer`](crate::MeinGptUser::issuer) says who vouched.
    ///
    /// Settings of the request rather than of an issuer come from the
    /// **first** configuration and are ignored in the others: token sources,
    /// realm, maximum token size, the verified-token cache (shared; each
    /// entry stays tied to the issuer and the key that verified it) and the
    /// clock. Two configurations for one issuer are refused; give one
    /// configuration several audiences (or organizations) instead.
    ///
    /// ```
    /// use meingpt_auth::MeinGptAuth;
    ///
    /// let auth = MeinGptAuth::from_issuers([
    ///     MeinGptAuth::builder().organization("clx0987654321"),
    ///     MeinGptAuth::oidc("https://login.microsoftonline.com/TENANT_ID/v2.0")
    ///         .audience("api://my-api"),
    /// ])
    /// .unwrap();
    /// # let _ = auth;
    /// ```
    ///
    /// # Errors
    ///
    /// When no configuration is given, when one of them cannot work (as
    /// [`MeinGptAuthBuilder::build`]), or when two name the same issuer.
    pub fn from_issuers(
        issuers: impl IntoIterator<Item = MeinGptAuthBuilder>,
    ) -> Result<Self, ConfigError> {
        build::build_issuers(issuers.into_iter().collect()).map_err(|(_, error)| error)
    }

    /// Configures from the environment (see the crate docs for the
    /// variables). Fails with one line naming the variable at fault.
    pub fn from_env() -> Result<Self, ConfigError> {
        env::auth_from(|name| std::env::var(name).ok())
    }

    /// The metadata of another protected resource this authenticator
    /// guards, its `authorization_servers` derived from this
    /// authenticator's issuers unless given: for one authenticator in front
    /// of several resources (a gateway's routes), each layer naming its own
    /// with [`AuthLayer::resource_metadata`](crate::AuthLayer::resource_metadata).
    /// Tokens are bound to a resource only through
    /// [`resource_audience`](crate::MeinGptAuthBuilder::resource_audience),
    /// which names the authenticator's own.
    ///
    /// # Errors
    ///
    /// As the configuration would refuse `resource`, naming the setting.
    pub fn describe_resource(
        &self,
        resource: ProtectedResource,
    ) -> Result<ResourceMetadata, ConfigError> {
        ResourceMetadata::new(&resource, &self.issuer_kinds())
            .map_err(|error| ConfigError::invalid(error.setting, error.reason))
    }

    /// Whether any variable [`from_env`](Self::from_env) reads is set: tells
    /// "configured" from "nothing configured" (where a development setup may
    /// start an embedded issuer instead).
    pub fn configured_in_env() -> bool {
        ENV_VARIABLES
            .iter()
            .any(|name| std::env::var_os(name).is_some())
    }
}

/// A configuration that cannot work, named precisely enough to fix it.
///
/// Its `Display` is one line that names the setting (or environment
/// variable) at fault and never echoes a secret.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum ConfigError {
    /// A required setting is absent.
    Missing {
        /// The setting or environment variable.
        setting: &'static str,
    },
    /// A setting has a value that cannot work.
    Invalid {
        /// The setting or environment variable.
        setting: &'static str,
        /// What is wrong with it (never the value itself if it is secret).
        reason: String,
    },
}

impl ConfigError {
    pub(crate) fn invalid(setting: &'static str, reason: impl Into<String>) -> Self {
        Self::Invalid {
            setting,
            reason: reason.into(),
        }
    }

    /// The setting or environment variable the error is about.
    pub fn setting(&self) -> &'static str {
        match self {
            Self::Missing { setting } | Self::Invalid { setting, .. } => setting,
        }
    }

    fn rename(self, setting: &'static str) -> Self {
        match self {
            Self::Missing { .. } => Self::Missing { setting },
            Self::Invalid { reason, .. } => Self::Invalid { setting, reason },
        }
    }
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Missing { setting } => match env::missing_hint(setting) {
                Some(hint) => write!(f, "{setting} is not set: {hint}"),
                None => write!(f, "{setting} is not set"),
            },
            Self::Invalid { setting, reason } => write!(f, "{setting} is invalid: {reason}"),
        }
    }
}

impl std::error::Error for ConfigError {}

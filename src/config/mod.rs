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
//! Where each part lives: the builder in `builder.rs`, its checks and
//! `build()` in `build.rs`, the environment variables in `env.rs`. The
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

pub use builder::{MeinGptAuthBuilder, StaticKey};
pub use env::ENV_VARIABLES;

/// meinGPT's public instance; the default issuer.
pub const DEFAULT_ISSUER: &str = "https://app.meingpt.com";

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

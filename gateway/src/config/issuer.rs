//! The issuer when the file has no `[auth]`, or without a file: the crate's
//! environment variables, else (nothing configured, a loopback address)
//! the embedded development issuer. Both modes follow the same rule.

use std::net::SocketAddr;

use meingpt_auth::MeinGptAuth;

use super::{AuthSource, ConfigError, crate_error, crate_reason};

/// Where the configuration that names no issuer comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Origin {
    /// A file without `[auth]`.
    File,
    /// The environment alone.
    Environment,
}

/// The crate's variables; with none set, the development issuer on a
/// loopback `listen` address, and the crate's wording of what to set
/// anywhere else.
pub(super) fn from_env_or_development(
    listen: SocketAddr,
    origin: Origin,
) -> Result<AuthSource, ConfigError> {
    let error = match MeinGptAuth::from_env() {
        Ok(auth) => return Ok(AuthSource::Configured(auth)),
        Err(error) => error,
    };
    if MeinGptAuth::configured_in_env() {
        return Err(crate_error(error));
    }
    if cfg!(feature = "dev-issuer") && listen.ip().is_loopback() {
        return Ok(AuthSource::Development);
    }
    let mut reason = crate_reason(&error);
    if origin == Origin::File {
        reason.push_str(", or list them under [auth] organizations in the file");
    }
    if cfg!(feature = "dev-issuer") {
        reason.push_str(&format!(
            "; the development issuer starts only on a loopback address, not {listen}"
        ));
    } else {
        reason.push_str("; this build has no development issuer (feature dev-issuer)");
    }
    Err(ConfigError::new(error.setting(), reason))
}

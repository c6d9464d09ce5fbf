//! Configuration errors: one line naming the key or variable at fault, and
//! the crate's own wording where the crate refused a value.

use std::fmt;

/// A configuration error: the key or variable at fault and what is wrong.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    key: String,
    reason: String,
}

impl ConfigError {
    /// An error about `key`.
    pub fn new(key: impl Into<String>, reason: impl Into<String>) -> Self {
        Self {
            key: key.into(),
            reason: reason.into(),
        }
    }

    /// The key (`route[0].upstream`) or environment variable at fault.
    pub fn key(&self) -> &str {
        &self.key
    }
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // One line, whatever the reason says.
        let reason = self.reason.replace(['\n', '\r'], " ");
        write!(f, "{}: {}", self.key, reason.trim())
    }
}

impl std::error::Error for ConfigError {}

/// The crate's error under `key`, without repeating the setting's name.
pub(super) fn crate_error_as(key: String, error: &meingpt_auth::ConfigError) -> ConfigError {
    ConfigError::new(key, crate_reason(error))
}

/// The crate's wording of `error` after the setting's name: "is not set"
/// and what to set it to, or what is wrong with the value.
pub(super) fn crate_reason(error: &meingpt_auth::ConfigError) -> String {
    match error {
        meingpt_auth::ConfigError::Missing { setting } => {
            let full = error.to_string();
            match full.strip_prefix(setting) {
                Some(rest) => rest.trim_start().to_owned(),
                None => full,
            }
        }
        meingpt_auth::ConfigError::Invalid { reason, .. } => reason.clone(),
        other => other.to_string(),
    }
}

/// The crate's error from the environment: it names the variable.
pub(super) fn crate_error(error: meingpt_auth::ConfigError) -> ConfigError {
    crate_error_as(error.setting().to_owned(), &error)
}

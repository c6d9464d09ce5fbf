//! `[connections]`: the client connection policy's timeouts and cap.

use super::{ConfigError, seconds};
use crate::server::ConnectionLimits;

/// `[connections]`: how long client connections may take and how many may
/// be open.
#[derive(Debug, Default, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConnectionsConfig {
    /// Open client connections at most; at the cap the longest idle one is
    /// closed for a new one.
    pub max: Option<u64>,
    /// Seconds from accept until the first request's head is complete.
    pub header_read_timeout_secs: Option<f64>,
    /// Seconds from the end of a response until the next request's head.
    pub idle_timeout_secs: Option<f64>,
    /// Seconds from accept until the TLS handshake is complete.
    pub tls_handshake_timeout_secs: Option<f64>,
}

/// The limits `[connections]` asks for; errors name `connections.<key>`.
pub(super) fn connection_limits(
    config: Option<ConnectionsConfig>,
) -> Result<ConnectionLimits, ConfigError> {
    let config = config.unwrap_or_default();
    let defaults = ConnectionLimits::default();
    let max_connections = match config.max {
        None => defaults.max_connections,
        Some(0) => return Err(ConfigError::new("connections.max", "must be above zero")),
        Some(max) => {
            usize::try_from(max).map_err(|_| ConfigError::new("connections.max", "too large"))?
        }
    };
    let time = |key: &str, value: Option<f64>, default| {
        seconds(&format!("connections.{key}"), value).map(|v| v.unwrap_or(default))
    };
    Ok(ConnectionLimits {
        max_connections,
        header_read_timeout: time(
            "header_read_timeout_secs",
            config.header_read_timeout_secs,
            defaults.header_read_timeout,
        )?,
        idle_timeout: time(
            "idle_timeout_secs",
            config.idle_timeout_secs,
            defaults.idle_timeout,
        )?,
        tls_handshake_timeout: time(
            "tls_handshake_timeout_secs",
            config.tls_handshake_timeout_secs,
            defaults.tls_handshake_timeout,
        )?,
    })
}

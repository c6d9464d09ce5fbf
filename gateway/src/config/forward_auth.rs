//! The forward-auth endpoint and the trusted proxies, from the file
//! (`[forward_auth]`, `trusted_proxies`) or the environment
//! (`GATEWAY_FORWARD_AUTH_*`, `GATEWAY_TRUSTED_PROXIES`).

use super::*;

/// The default path of the forward-auth endpoint.
pub const DEFAULT_FORWARD_AUTH_PATH: &str = "/_meingpt/auth";

/// `[forward_auth]`: the endpoint proxies ask, and where they name the
/// original request.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ForwardAuthConfig {
    /// The endpoint's path; `/_meingpt/auth` when absent.
    pub path: Option<String>,
    /// The one header read for the original URI; `X-Original-URI` when
    /// absent (Caddy and Traefik: `X-Forwarded-Uri`; ingress-nginx:
    /// `X-Original-URL`).
    pub uri_header: Option<String>,
    /// The one header read for the original method; `X-Original-Method`
    /// when absent (Caddy and Traefik: `X-Forwarded-Method`).
    pub method_header: Option<String>,
}

/// The forward-auth endpoint, validated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ForwardAuthEndpoint {
    /// Where proxies ask (Envoy appends the original path to it).
    pub path: String,
    /// Where the original URI and method are read from.
    pub headers: OriginalRequestHeaders,
}

impl Default for ForwardAuthEndpoint {
    fn default() -> Self {
        Self {
            path: DEFAULT_FORWARD_AUTH_PATH.to_owned(),
            headers: OriginalRequestHeaders::default(),
        }
    }
}

/// The environment variables of the environment-only mode that configure
/// forward auth and the trusted proxies.
pub const FORWARD_AUTH_VARIABLES: [&str; 4] = [
    "GATEWAY_FORWARD_AUTH_PATH",
    "GATEWAY_FORWARD_AUTH_URI_HEADER",
    "GATEWAY_FORWARD_AUTH_METHOD_HEADER",
    "GATEWAY_TRUSTED_PROXIES",
];

impl ForwardAuthEndpoint {
    /// From `[forward_auth]`; errors name `forward_auth.<key>`.
    pub(super) fn from_file(table: Option<ForwardAuthConfig>) -> Result<Self, ConfigError> {
        let table = table.unwrap_or_default();
        Self::resolve([
            ("forward_auth.path", table.path),
            ("forward_auth.uri_header", table.uri_header),
            ("forward_auth.method_header", table.method_header),
        ])
    }

    /// From `GATEWAY_FORWARD_AUTH_PATH`, `…_URI_HEADER`, `…_METHOD_HEADER`.
    pub(super) fn from_env(env: &dyn Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let [path, uri, method, _] = FORWARD_AUTH_VARIABLES;
        Self::resolve([(path, env(path)), (uri, env(uri)), (method, env(method))])
    }

    /// `[(key, value)]` for the path, the URI header and the method header.
    fn resolve(settings: [(&str, Option<String>); 3]) -> Result<Self, ConfigError> {
        let [(path_key, path), (uri_key, uri), (method_key, method)] = settings;
        let path = path.unwrap_or_else(|| DEFAULT_FORWARD_AUTH_PATH.to_owned());
        if !path.starts_with('/') || path.contains(['?', '#']) {
            return Err(ConfigError::new(path_key, "must be a path starting with /"));
        }
        if RESERVED_PATHS.contains(&path.as_str()) {
            return Err(ConfigError::new(path_key, format!("{path} is reserved")));
        }
        let defaults = OriginalRequestHeaders::default();
        let uri = header_setting(uri_key, uri)?.unwrap_or_else(|| defaults.uri().clone());
        let method =
            header_setting(method_key, method)?.unwrap_or_else(|| defaults.method().clone());
        if uri == method {
            return Err(ConfigError::new(
                method_key,
                "must differ from the original URI's header",
            ));
        }
        Ok(Self {
            path,
            headers: OriginalRequestHeaders::new(uri, method),
        })
    }
}

/// A header name for the original URI or method; identity, token and
/// connection-level headers are refused.
fn header_setting(key: &str, value: Option<String>) -> Result<Option<HeaderName>, ConfigError> {
    let Some(value) = value else {
        return Ok(None);
    };
    let name = HeaderName::try_from(value.trim())
        .map_err(|_| ConfigError::new(key, format!("{value:?} is not a header name")))?;
    if identity::is_identity_header(&name)
        || identity::is_hop_by_hop(&name)
        || name == header::HOST
        || name == header::AUTHORIZATION
        || name == meingpt_auth::MEINGPT_JWT_HEADER
    {
        return Err(ConfigError::new(
            key,
            format!("{name} carries something else; name the header your proxy sets"),
        ));
    }
    Ok(Some(name))
}

/// `trusted_proxies` from the file; loopback when absent.
pub(super) fn trusted_proxies_from_file(
    entries: Option<Vec<String>>,
) -> Result<TrustedProxies, ConfigError> {
    match entries {
        None => Ok(TrustedProxies::default()),
        Some(entries) => {
            TrustedProxies::parse(entries.iter().map(String::as_str)).map_err(|entry| {
                ConfigError::new(
                    "trusted_proxies",
                    format!("{entry:?} is not an IP address or CIDR range"),
                )
            })
        }
    }
}

/// `GATEWAY_TRUSTED_PROXIES` (comma-separated; empty: nobody); loopback
/// when unset.
pub(super) fn trusted_proxies_from_env(
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<TrustedProxies, ConfigError> {
    let key = FORWARD_AUTH_VARIABLES[3];
    match env(key) {
        None => Ok(TrustedProxies::default()),
        Some(list) => TrustedProxies::parse(list.split(',').filter(|e| !e.trim().is_empty()))
            .map_err(|entry| {
                ConfigError::new(
                    key,
                    format!("{:?} is not an IP address or CIDR range", entry.trim()),
                )
            }),
    }
}

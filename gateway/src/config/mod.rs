//! Configuration: the TOML file ([`FileConfig`]), the environment-only mode,
//! and the [`Settings`] both resolve to.
//!
//! Every error is one line that names the key (`route[1].upstream`) or the
//! environment variable (`GATEWAY_UPSTREAM`) at fault, and never echoes a
//! secret.

use std::collections::BTreeMap;
use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use http::header::{self, HeaderName, HeaderValue};
use http::uri::{Authority, Uri};
use meingpt_auth::{FrameAncestorsLayer, MeinGptAuth, Role};
use serde::Deserialize;

use crate::admission::{OriginalRequestHeaders, TrustedProxies};
use crate::identity;
use crate::routes::{Policy, Route, Upstream};
use crate::server::ConnectionLimits;
use crate::upgrade::Upgrades;

mod connections;
mod embed;
mod error;
mod forward_auth;
mod issuer;
mod resource;
mod route;
mod tls;

pub use connections::ConnectionsConfig;
use connections::connection_limits;
pub use embed::{EmbedConfig, MeinGptOrigins};
pub use error::ConfigError;
use error::{crate_error, crate_error_as, crate_reason};
pub use forward_auth::{
    DEFAULT_FORWARD_AUTH_PATH, FORWARD_AUTH_VARIABLES, ForwardAuthConfig, ForwardAuthEndpoint,
};
use forward_auth::{trusted_proxies_from_env, trusted_proxies_from_file};
pub use resource::ProtectedResourceConfig;
use resource::resolve_resource;
use route::{resolve_route, upstream_url};

/// Where the gateway listens when neither the file nor `LISTEN_ADDR` says.
pub const DEFAULT_LISTEN: &str = "127.0.0.1:3000";
/// The default request body limit: 10 MiB.
pub const DEFAULT_MAX_BODY_BYTES: u64 = 10 * 1024 * 1024;
/// The default upstream connect timeout.
pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// The default time an upstream has to send its response headers.
pub const DEFAULT_RESPONSE_TIMEOUT: Duration = Duration::from_secs(60);

/// Paths the gateway answers itself, whatever the routes say.
const RESERVED_PATHS: [&str; 2] = ["/healthz", "/readyz"];

/// The gateway's configuration file, exactly as written.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileConfig {
    /// `host:port` to listen on; `LISTEN_ADDR` overrides it.
    pub listen: Option<String>,
    /// `host:port` for Prometheus `/metrics`; off when absent.
    pub metrics_listen: Option<String>,
    /// Request bodies above this many bytes are answered `413`.
    pub max_body_bytes: Option<u64>,
    /// Seconds to connect to an upstream before answering `502`.
    pub connect_timeout_secs: Option<f64>,
    /// Seconds an upstream has to send its response headers before `504`.
    pub response_timeout_secs: Option<f64>,
    /// Moved to `[forward_auth]` `path`; refused with a line that says so.
    pub forward_auth_path: Option<String>,
    /// Addresses and CIDR ranges of the proxies allowed to ask forward auth
    /// and to set forwarding headers; loopback when absent.
    pub trusted_proxies: Option<Vec<String>>,
    /// `[forward_auth]`: the endpoint and the original request's headers.
    pub forward_auth: Option<ForwardAuthConfig>,
    /// The issuer; when absent, `MeinGptAuth::from_env()`, or with none of
    /// its variables set, the development issuer on a loopback address.
    pub auth: Option<AuthConfig>,
    /// TLS termination; plain HTTP when absent.
    pub tls: Option<TlsConfig>,
    /// The routes (`[[route]]`).
    #[serde(default)]
    pub route: Vec<RouteConfig>,
    /// Client connections: timeouts and the cap.
    pub connections: Option<ConnectionsConfig>,
    /// `[embed]`: who meinGPT is, for the embed routes.
    pub embed: Option<EmbedConfig>,
}

/// `[auth]`: the meinGPT organizations whose tokens are accepted.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuthConfig {
    /// Organization ids (the accepted `aud` values).
    pub organizations: Vec<String>,
    /// The meinGPT instance; `https://app.meingpt.com` when absent.
    pub issuer: Option<String>,
    /// Override of the derived JWKS URL.
    pub jwks_url: Option<String>,
}

/// `[tls]`: certificate chain and private key, PEM files.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TlsConfig {
    /// The certificate chain, leaf first.
    pub cert: PathBuf,
    /// The private key (PKCS#8, PKCS#1 or SEC1).
    pub key: PathBuf,
}

impl TlsConfig {
    /// The rustls configuration the gateway serves with (HTTP/2 and
    /// HTTP/1.1 offered); errors name `tls.cert` or `tls.key`.
    pub fn server_config(&self) -> Result<Arc<rustls::ServerConfig>, ConfigError> {
        tls::server_config(self)
    }
}

/// One `[[route]]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RouteConfig {
    /// Path prefix, matched on whole segments; the longest wins.
    pub prefix: String,
    /// `http://host:port[/base]`.
    pub upstream: String,
    /// No authentication at all.
    #[serde(default)]
    pub public: bool,
    /// The user needs any of these roles.
    #[serde(default)]
    pub roles: Vec<String>,
    /// The user needs to be in any of these teams (by id).
    #[serde(default)]
    pub team_ids: Vec<String>,
    /// The user needs to be in any of these teams (by name).
    #[serde(default)]
    pub team_names: Vec<String>,
    /// Forward the token headers (`X-meinGPT-JWT`, `Authorization`) to the
    /// upstream too; on a public route they pass through unverified.
    #[serde(default)]
    pub forward_token: bool,
    /// Remove the prefix from the path before forwarding.
    #[serde(default)]
    pub strip_prefix: bool,
    /// Add `Content-Security-Policy: frame-ancestors …` for these origins.
    pub frame_ancestors: Option<Vec<String>>,
    /// Headers set on every forwarded request; `${VAR}` is read from the environment.
    #[serde(default)]
    pub inject_headers: BTreeMap<String, String>,
    /// Let paths with backslashes, control characters, double
    /// percent-encoding or bytes that are not UTF-8 through to this route.
    #[serde(default)]
    pub allow_unusual_path_characters: bool,
    /// The protocols a client may upgrade to; `["websocket"]` when absent.
    pub upgrades: Option<Vec<String>>,
    /// `[route.protected_resource]`: the route is an OAuth protected
    /// resource (RFC 9728) that MCP clients sign in to by themselves.
    pub protected_resource: Option<ProtectedResourceConfig>,
    /// Embed mode: the unmodified web app behind this route works framed
    /// by meinGPT (sign-in from the frame, session cookie, refresh).
    #[serde(default)]
    pub embed: bool,
    /// Embed mode: add the refresh script to the app's HTML pages (default
    /// true).
    pub embed_script: Option<bool>,
    /// Embed mode: make the app's own cookies `SameSite=None; Secure;
    /// Partitioned` (default false).
    pub embed_partition_cookies: Option<bool>,
}

/// Where the authenticator comes from.
pub enum AuthSource {
    /// Configured by the file or the environment.
    Configured(MeinGptAuth),
    /// Nothing configured on a loopback address: the embedded development issuer.
    Development,
}

impl fmt::Debug for AuthSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Configured(auth) => f.debug_tuple("Configured").field(auth).finish(),
            Self::Development => f.write_str("Development"),
        }
    }
}

/// A complete, validated configuration.
#[derive(Debug)]
pub struct Settings {
    /// The main listener.
    pub(crate) listen: SocketAddr,
    /// The metrics listener.
    pub(crate) metrics_listen: Option<SocketAddr>,
    /// Request body limit in bytes.
    pub(crate) max_body_bytes: usize,
    /// Upstream connect timeout.
    pub(crate) connect_timeout: Duration,
    /// Upstream response-header timeout.
    pub(crate) response_timeout: Duration,
    /// The forward-auth endpoint.
    pub(crate) forward_auth: ForwardAuthEndpoint,
    /// Who may ask forward auth and set forwarding headers.
    pub(crate) trusted_proxies: TrustedProxies,
    /// TLS termination (rustls, from the `[tls]` files); plain HTTP when `None`.
    pub(crate) tls: Option<Arc<rustls::ServerConfig>>,
    /// The routes, in file order.
    pub(crate) routes: Vec<Route>,
    /// The authenticator.
    pub auth: AuthSource,
    /// Client connections: timeouts and the cap.
    pub(crate) connections: ConnectionLimits,
    /// Who frames the embed routes.
    pub(crate) meingpt_origins: MeinGptOrigins,
}

impl Settings {
    /// Reads and validates a TOML file; `env` stands for the environment
    /// (`LISTEN_ADDR`, injected header variables). Without `[auth]` the
    /// issuer comes from the crate's variables, or, with none set and a
    /// loopback address, is the development issuer, as in
    /// [`from_env`](Self::from_env).
    pub fn from_file(
        path: &Path,
        env: &dyn Fn(&str) -> Option<String>,
    ) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|e| {
            ConfigError::new("--config", format!("cannot read {}: {e}", path.display()))
        })?;
        let file = parse(&text)?;
        Self::from_config(file, path.parent().unwrap_or(Path::new(".")), env)
    }

    /// Validates a parsed file; relative TLS paths are taken from `base`.
    pub fn from_config(
        file: FileConfig,
        base: &Path,
        env: &dyn Fn(&str) -> Option<String>,
    ) -> Result<Self, ConfigError> {
        let listen = match env("LISTEN_ADDR") {
            Some(value) => socket_addr("LISTEN_ADDR", &value)?,
            None => socket_addr("listen", file.listen.as_deref().unwrap_or(DEFAULT_LISTEN))?,
        };
        let metrics_listen = file
            .metrics_listen
            .as_deref()
            .map(|value| socket_addr("metrics_listen", value))
            .transpose()?;
        let max_body_bytes = match file.max_body_bytes {
            Some(0) => return Err(ConfigError::new("max_body_bytes", "must be above zero")),
            Some(bytes) => usize::try_from(bytes)
                .map_err(|_| ConfigError::new("max_body_bytes", "too large"))?,
            None => DEFAULT_MAX_BODY_BYTES as usize,
        };
        let connect_timeout = seconds("connect_timeout_secs", file.connect_timeout_secs)?
            .unwrap_or(DEFAULT_CONNECT_TIMEOUT);
        let response_timeout = seconds("response_timeout_secs", file.response_timeout_secs)?
            .unwrap_or(DEFAULT_RESPONSE_TIMEOUT);
        if file.forward_auth_path.is_some() {
            return Err(ConfigError::new(
                "forward_auth_path",
                "moved: write `path = …` in a [forward_auth] table instead",
            ));
        }
        let forward_auth = ForwardAuthEndpoint::from_file(file.forward_auth)?;
        let trusted_proxies = trusted_proxies_from_file(file.trusted_proxies)?;
        let tls = file
            .tls
            .map(|tls| {
                tls::server_config(&TlsConfig {
                    cert: base.join(tls.cert),
                    key: base.join(tls.key),
                })
            })
            .transpose()?;
        let mut routes = Vec::with_capacity(file.route.len());
        let mut resources = Vec::new();
        for (index, mut route) in file.route.into_iter().enumerate() {
            if let Some(resource) = route.protected_resource.take() {
                resources.push((index, (route.public, route.embed), resource));
            }
            let route = resolve_route(index, route, env)?;
            if let Some(other) = routes.iter().position(|r: &Route| r.prefix == route.prefix) {
                return Err(ConfigError::new(
                    format!("route[{index}].prefix"),
                    format!("{} is already the prefix of route[{other}]", route.prefix),
                ));
            }
            routes.push(route);
        }
        let connections = connection_limits(file.connections)?;
        let file_issuer = file.auth.as_ref().map(|auth| {
            auth.issuer
                .clone()
                .unwrap_or_else(|| meingpt_auth::DEFAULT_ISSUER.to_owned())
        });
        let auth = match file.auth {
            Some(auth) => AuthSource::Configured(auth_from_file(auth)?),
            None => issuer::from_env_or_development(listen, issuer::Origin::File)?,
        };
        for (index, kind, resource) in resources {
            routes[index].protected_resource =
                Some(resolve_resource(index, kind, resource, &auth)?);
        }
        let meingpt_origins = embed::meingpt_origins(
            file.embed.and_then(|embed| embed.meingpt_origins),
            file_issuer.as_deref(),
            &auth,
            &routes,
            env,
        )?;
        Ok(Self {
            listen,
            metrics_listen,
            max_body_bytes,
            connect_timeout,
            response_timeout,
            forward_auth,
            trusted_proxies,
            tls,
            routes,
            auth,
            connections,
            meingpt_origins,
        })
    }

    /// The environment-only mode: the crate's variables, `GATEWAY_UPSTREAM`
    /// (one route `/`, any signed-in user), `LISTEN_ADDR`, and
    /// [`FORWARD_AUTH_VARIABLES`]. With none of
    /// the crate's variables set, the development issuer on a loopback
    /// address, and an error elsewhere.
    pub fn from_env(env: &dyn Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let listen = socket_addr(
            "LISTEN_ADDR",
            env("LISTEN_ADDR").as_deref().unwrap_or(DEFAULT_LISTEN),
        )?;
        let forward_auth = ForwardAuthEndpoint::from_env(env)?;
        let trusted_proxies = trusted_proxies_from_env(env)?;
        let auth = issuer::from_env_or_development(listen, issuer::Origin::Environment)?;
        let mut routes = Vec::new();
        if let Some(upstream) = env("GATEWAY_UPSTREAM") {
            let development = matches!(auth, AuthSource::Development);
            routes.push(Route {
                prefix: "/".to_owned(),
                upstream: upstream_url("GATEWAY_UPSTREAM", &upstream)?,
                policy: Policy::signed_in(),
                forward_token: false,
                strip_prefix: false,
                frame_ancestors: None,
                inject_headers: Vec::new(),
                allow_unusual_path_characters: false,
                upgrades: Upgrades::default(),
                // MCP_RESOURCE_URL: the one route is that resource.
                protected_resource: match &auth {
                    AuthSource::Configured(auth) => auth.resource_metadata().cloned(),
                    AuthSource::Development => None,
                },
                embed: embed::from_env(env, development)?,
            });
        }
        let meingpt_origins = embed::meingpt_origins(None, None, &auth, &routes, env)?;
        Ok(Self {
            listen,
            metrics_listen: None,
            max_body_bytes: DEFAULT_MAX_BODY_BYTES as usize,
            connect_timeout: DEFAULT_CONNECT_TIMEOUT,
            response_timeout: DEFAULT_RESPONSE_TIMEOUT,
            forward_auth,
            trusted_proxies,
            tls: None,
            routes,
            auth,
            connections: ConnectionLimits::default(),
            meingpt_origins,
        })
    }
}

/// Parses the TOML text; the error names the key at fault.
pub fn parse(text: &str) -> Result<FileConfig, ConfigError> {
    let deserializer = toml::Deserializer::parse(text).map_err(|e| syntax_error(&e, text))?;
    serde_path_to_error::deserialize(deserializer).map_err(|e| {
        let path = e.path().to_string();
        let inner = e.into_inner();
        let key = if path == "." { String::new() } else { path };
        let message = inner.message().to_owned();
        let field = unknown_field(&message).map(str::to_owned);
        let key = match field {
            // The path may or may not end at the unknown field already.
            Some(field) if key.is_empty() => field,
            Some(field) if key == field || key.ends_with(&format!(".{field}")) => key,
            Some(field) => format!("{key}.{field}"),
            None if key.is_empty() => "config".to_owned(),
            None => key,
        };
        ConfigError::new(key, message)
    })
}

/// The field an "unknown field `x`" message is about.
fn unknown_field(message: &str) -> Option<&str> {
    let rest = message.strip_prefix("unknown field `")?;
    rest.split('`').next()
}

fn syntax_error(error: &toml::de::Error, text: &str) -> ConfigError {
    let line = error
        .span()
        .map(|span| text[..span.start.min(text.len())].lines().count().max(1));
    let key = match line {
        Some(line) => format!("line {line}"),
        None => "config".to_owned(),
    };
    ConfigError::new(key, error.message())
}

fn socket_addr(key: &str, value: &str) -> Result<SocketAddr, ConfigError> {
    value
        .parse()
        .map_err(|_| ConfigError::new(key, format!("{value:?} is not an ip:port address")))
}

fn seconds(key: &str, value: Option<f64>) -> Result<Option<Duration>, ConfigError> {
    match value {
        None => Ok(None),
        Some(secs) if secs.is_finite() && secs > 0.0 && secs <= 86_400.0 => {
            Ok(Some(Duration::from_secs_f64(secs)))
        }
        Some(_) => Err(ConfigError::new(
            key,
            "must be above zero and at most 86400",
        )),
    }
}

fn auth_from_file(auth: AuthConfig) -> Result<MeinGptAuth, ConfigError> {
    if auth.organizations.is_empty() {
        return Err(ConfigError::new(
            "auth.organizations",
            "must name at least one organization",
        ));
    }
    let mut builder = MeinGptAuth::builder().organizations(auth.organizations);
    if let Some(issuer) = auth.issuer {
        builder = builder.issuer(issuer);
    }
    if let Some(url) = auth.jwks_url {
        builder = builder.jwks_url(url);
    }
    builder.build().map_err(|e| {
        let key = match e.setting() {
            "organization" | "audience" => "auth.organizations".to_owned(),
            "jwks_url" | "url" => "auth.jwks_url".to_owned(),
            other => format!("auth.{other}"),
        };
        crate_error_as(key, &e)
    })
}

#[cfg(test)]
mod tests {
    use super::route::{expand, normalize_prefix};
    use super::*;

    fn no_env(_: &str) -> Option<String> {
        None
    }

    fn error_of(text: &str) -> ConfigError {
        match parse(text).and_then(|f| Settings::from_config(f, Path::new("."), &no_env)) {
            Ok(_) => panic!("accepted: {text}"),
            Err(e) => e,
        }
    }

    const AUTH: &str = "[auth]\norganizations = [\"org\"]\n";

    #[test]
    fn unknown_top_level_key_is_named() {
        assert_eq!(error_of("lissten = \"127.0.0.1:1\"").key(), "lissten");
    }

    #[test]
    fn unknown_route_key_is_named_with_its_route() {
        let e = error_of(&format!(
            "{AUTH}[[route]]\nprefix = \"/\"\nupstream = \"http://127.0.0.1:1\"\nrole = [\"x\"]\n"
        ));
        assert_eq!(e.key(), "route[0].role");
    }

    #[test]
    fn wrong_type_is_named() {
        assert_eq!(error_of("max_body_bytes = \"ten\"").key(), "max_body_bytes");
    }

    #[test]
    fn https_upstream_is_refused_naming_the_route() {
        let e = error_of(&format!(
            "{AUTH}[[route]]\nprefix = \"/\"\nupstream = \"https://example.com\"\n"
        ));
        assert_eq!(e.key(), "route[0].upstream");
    }

    #[test]
    fn missing_variable_is_named_without_the_value() {
        let e = error_of(&format!(
            "{AUTH}[[route]]\nprefix = \"/\"\nupstream = \"http://127.0.0.1:1\"\n\
             [route.inject_headers]\nAuthorization = \"Bearer ${{GATEWAY_TEST_UNSET_KEY}}\"\n"
        ));
        assert_eq!(e.key(), "route[0].inject_headers.Authorization");
        assert!(e.to_string().contains("GATEWAY_TEST_UNSET_KEY"), "{e}");
    }

    #[test]
    fn expansion_replaces_every_variable() {
        let env = |name: &str| (name == "K").then(|| "v".to_owned());
        assert_eq!(expand("a ${K} b ${K}", &env).unwrap(), "a v b v");
        assert!(expand("${K", &env).is_err());
        assert!(expand("${}", &env).is_err());
    }

    #[test]
    fn prefixes_are_normalized() {
        assert_eq!(normalize_prefix("/api/").as_deref(), Some("/api"));
        assert_eq!(normalize_prefix("/").as_deref(), Some("/"));
        assert_eq!(normalize_prefix("api"), None);
        assert_eq!(normalize_prefix("/a/../b"), None);
        assert_eq!(normalize_prefix("//a"), None);
        assert_eq!(normalize_prefix("/a\\b"), None);
        assert_eq!(normalize_prefix("/a%2Fb"), None);
    }

    #[test]
    fn syntax_errors_name_the_line() {
        let e = error_of("listen = \"a\"\n[[route]\n");
        assert_eq!(e.key(), "line 2");
    }
}

//! Configuration: [`MeinGptAuth`] and its [`MeinGptAuthBuilder`].
//!
//! The meinGPT preset needs one thing, the organization id; everything else
//! has a safe default:
//!
//! | setting | default |
//! | --- | --- |
//! | issuer (`iss`) | `https://app.meingpt.com` |
//! | JWKS | `{issuer}/api/custom-apps/v1/jwks/{organization}` |
//! | algorithms | `RS256` only |
//! | token sources | `X-meinGPT-JWT`, then `Authorization: Bearer` |
//! | leeway for `exp`/`nbf`/`iat` | 30 s |
//! | token size cap | 16 KiB |
//! | JWKS TTL / stale limit / cooldown | 10 min / 6 h / 30 s |
//! | JWKS timeout / retry after failure / size cap | 5 s / 5 s / 256 KiB |

mod env;

use std::fmt;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use http::{HeaderMap, Response};
use jsonwebtoken::Algorithm;
use reqwest::Url;

use crate::claims::MeinGptUser;
use crate::clock::{Clock, SharedClock, SystemClock};
use crate::error::AuthError;
use crate::jwks::{JwksCache, JwksSettings};
use crate::layer::AuthLayer;
use crate::token::{self, TokenSource};
use crate::verify::Verifier;

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
            Self::Missing { setting } => write!(f, "{setting} is not set"),
            Self::Invalid { setting, reason } => write!(f, "{setting} is invalid: {reason}"),
        }
    }
}

impl std::error::Error for ConfigError {}

/// A configured authenticator: verifies tokens and makes the layers.
///
/// Cheap to clone; every clone shares one key cache.
///
/// ```
/// use meingpt_auth::MeinGptAuth;
///
/// let auth = MeinGptAuth::builder()
///     .organization("clx0987654321")
///     .build()
///     .unwrap();
/// let layer = auth.layer();
/// # let _ = layer;
/// ```
#[derive(Clone)]
pub struct MeinGptAuth {
    inner: Arc<Inner>,
}

struct Inner {
    verifier: Verifier,
    sources: Vec<TokenSource>,
    realm: String,
}

impl fmt::Debug for MeinGptAuth {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MeinGptAuth")
            .field("issuer", &self.inner.verifier.issuer)
            .field("sources", &self.inner.sources)
            .field("realm", &self.inner.realm)
            .finish_non_exhaustive()
    }
}

impl MeinGptAuth {
    /// A builder with the meinGPT preset.
    pub fn builder() -> MeinGptAuthBuilder {
        MeinGptAuthBuilder::default()
    }

    /// Configures from the environment (see the crate docs for the
    /// variables). Fails with one line naming the variable at fault.
    pub fn from_env() -> Result<Self, ConfigError> {
        env::auth_from(|name| std::env::var(name).ok())
    }

    /// The layer that requires a valid token on every request.
    pub fn layer(&self) -> AuthLayer {
        AuthLayer::new(self.clone())
    }

    /// The layer that lets requests without a token through anonymously;
    /// a token that is present but bad is still rejected.
    pub fn optional_layer(&self) -> AuthLayer {
        AuthLayer::new(self.clone()).allow_anonymous(true)
    }

    /// Verifies one token (a compact JWS), for uses outside HTTP middleware.
    pub async fn verify(&self, token: &str) -> Result<MeinGptUser, AuthError> {
        self.inner.verifier.verify(token).await
    }

    /// Finds the token in `headers` (by the configured sources) and verifies
    /// it. `Ok(None)` when no token was sent.
    pub async fn authenticate(
        &self,
        headers: &HeaderMap,
    ) -> Result<Option<MeinGptUser>, AuthError> {
        match token::extract(&self.inner.sources, headers)? {
            Some(token) => self.verify(token).await.map(Some),
            None => Ok(None),
        }
    }

    /// The realm named in `WWW-Authenticate` challenges.
    pub fn realm(&self) -> &str {
        &self.inner.realm
    }

    /// Renders `error` as this configuration answers it (RFC 6750).
    pub fn reject<B: From<String>>(&self, error: &AuthError) -> Response<B> {
        error.to_response(&self.inner.realm)
    }

    /// The generation of the key set cached for the first organization; it
    /// changes whenever a new key set is fetched.
    #[doc(hidden)]
    pub fn key_generation(&self) -> Option<u64> {
        self.inner.verifier.jwks.current_generation(0)
    }
}

/// Builds a [`MeinGptAuth`]; see the [module docs](self) for the defaults.
#[derive(Clone)]
#[must_use]
pub struct MeinGptAuthBuilder {
    organizations: Vec<String>,
    issuer: String,
    jwks_url: Option<String>,
    sources: Vec<TokenSource>,
    realm: String,
    leeway: Duration,
    max_token_size: usize,
    jwks: JwksSettings,
    clock: Arc<dyn Clock>,
}

impl fmt::Debug for MeinGptAuthBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MeinGptAuthBuilder")
            .field("organizations", &self.organizations)
            .field("issuer", &self.issuer)
            .field("jwks_url", &self.jwks_url)
            .finish_non_exhaustive()
    }
}

impl Default for MeinGptAuthBuilder {
    fn default() -> Self {
        Self {
            organizations: Vec::new(),
            issuer: DEFAULT_ISSUER.to_owned(),
            jwks_url: None,
            sources: TokenSource::defaults(),
            realm: "meingpt".to_owned(),
            leeway: Duration::from_secs(30),
            max_token_size: 16 * 1024,
            jwks: JwksSettings::default(),
            clock: Arc::new(SystemClock),
        }
    }
}

impl MeinGptAuthBuilder {
    /// The meinGPT organization id tokens must be issued for (`aud`).
    pub fn organization(mut self, id: impl Into<String>) -> Self {
        self.organizations = vec![id.into()];
        self
    }

    /// The meinGPT instance (`iss`), for self-hosted instances. An origin
    /// such as `https://meingpt.example.com`; a trailing `/` is dropped.
    pub fn issuer(mut self, origin: impl Into<String>) -> Self {
        self.issuer = origin.into();
        self
    }

    /// Fetch keys from this URL instead of the one derived from issuer and
    /// organization.
    pub fn jwks_url(mut self, url: impl Into<String>) -> Self {
        self.jwks_url = Some(url.into());
        self
    }

    /// Where tokens are looked for, in order; the first present wins.
    pub fn token_sources(mut self, sources: impl IntoIterator<Item = TokenSource>) -> Self {
        self.sources = sources.into_iter().collect();
        self
    }

    /// The realm named in `WWW-Authenticate` (default `meingpt`).
    pub fn realm(mut self, realm: impl Into<String>) -> Self {
        self.realm = realm.into();
        self
    }

    /// Clock skew tolerated for `exp`, `nbf` and `iat` (default 30 s, at most 5 min).
    pub fn leeway(mut self, leeway: Duration) -> Self {
        self.leeway = leeway;
        self
    }

    /// Tokens longer than this many bytes are refused before decoding (default 16 KiB).
    pub fn max_token_size(mut self, bytes: usize) -> Self {
        self.max_token_size = bytes;
        self
    }

    /// How long fetched keys are used before a background refresh (default 10 min).
    pub fn jwks_ttl(mut self, ttl: Duration) -> Self {
        self.jwks.ttl = ttl;
        self
    }

    /// How long past the TTL keys keep serving while the issuer fails (default 6 h).
    pub fn jwks_max_stale(mut self, max_stale: Duration) -> Self {
        self.jwks.max_stale = max_stale;
        self
    }

    /// Minimum time between refetches caused by unknown `kid`s (default 30 s).
    pub fn jwks_cooldown(mut self, cooldown: Duration) -> Self {
        self.jwks.cooldown = cooldown;
        self
    }

    /// After a failed fetch, wait this long before the next one; sent as
    /// `Retry-After` with `503` (default 5 s).
    pub fn jwks_retry_after(mut self, retry_after: Duration) -> Self {
        self.jwks.retry_after = retry_after;
        self
    }

    /// Time limit for one JWKS fetch, body included (default 5 s).
    pub fn jwks_timeout(mut self, timeout: Duration) -> Self {
        self.jwks.timeout = timeout;
        self
    }

    /// Largest JWKS body accepted (default 256 KiB).
    pub fn jwks_max_size(mut self, bytes: usize) -> Self {
        self.jwks.max_size = bytes;
        self
    }

    /// The time source (tests inject a clock they control).
    pub fn clock(mut self, clock: impl Clock) -> Self {
        self.clock = Arc::new(clock);
        self
    }

    /// Checks the configuration and builds the authenticator.
    pub fn build(self) -> Result<MeinGptAuth, ConfigError> {
        install_crypto_provider();
        let [organization] = self.organizations.as_slice() else {
            return Err(ConfigError::Missing {
                setting: "organization",
            });
        };
        if organization.is_empty()
            || !organization
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        {
            return Err(ConfigError::invalid(
                "organization",
                "an organization id has only letters, digits, '-' and '_'",
            ));
        }
        let issuer = self.issuer.strip_suffix('/').unwrap_or(&self.issuer);
        let issuer_url = checked_url(issuer).map_err(|e| e.rename("issuer"))?;
        if issuer_url.path() != "/" || issuer_url.query().is_some() {
            return Err(ConfigError::invalid(
                "issuer",
                "the meinGPT issuer is an origin such as https://app.meingpt.com",
            ));
        }
        let jwks_url = match &self.jwks_url {
            Some(url) => checked_url(url).map_err(|e| e.rename("jwks_url"))?,
            None => checked_url(&format!("{issuer}/api/custom-apps/v1/jwks/{organization}"))?,
        };
        if !(1..=256).contains(&self.realm.len())
            || !self
                .realm
                .bytes()
                .all(|b| (b' '..=b'~').contains(&b) && b != b'"' && b != b'\\')
        {
            return Err(ConfigError::invalid(
                "realm",
                "a realm is 1-256 printable ASCII characters without quotes or backslashes",
            ));
        }
        if self.sources.is_empty() {
            return Err(ConfigError::invalid(
                "token_sources",
                "at least one token source is needed",
            ));
        }
        if self.leeway > Duration::from_secs(300) {
            return Err(ConfigError::invalid("leeway", "at most 5 minutes"));
        }
        if self.max_token_size < 64 {
            return Err(ConfigError::invalid("max_token_size", "at least 64 bytes"));
        }
        if self.jwks.timeout.is_zero() {
            return Err(ConfigError::invalid("jwks_timeout", "must be above zero"));
        }
        let clock = SharedClock(self.clock);
        let algorithms = vec![Algorithm::RS256];
        let jwks = JwksCache::new(vec![jwks_url], algorithms.clone(), self.jwks, clock.clone())
            .map_err(|e| ConfigError::invalid("jwks_url", format!("HTTP client: {e}")))?;
        Ok(MeinGptAuth {
            inner: Arc::new(Inner {
                verifier: Verifier {
                    algorithms,
                    issuer: issuer.to_owned(),
                    audiences: vec![(organization.clone(), 0)],
                    leeway: self.leeway,
                    max_token_size: self.max_token_size,
                    jwks: Arc::new(jwks),
                    clock,
                },
                sources: self.sources,
                realm: self.realm,
            }),
        })
    }
}

/// Picks aws-lc-rs for jsonwebtoken, whatever features other crates in the
/// build enabled on it (with both backends it would panic at first use).
fn install_crypto_provider() {
    let _ = jsonwebtoken::crypto::CryptoProvider::install_default(
        &jsonwebtoken::crypto::aws_lc::DEFAULT_PROVIDER,
    );
}

/// Parses a URL that keys or discovery may be fetched from: `https://`, or
/// `http://` to a loopback host only.
pub(crate) fn checked_url(raw: &str) -> Result<Url, ConfigError> {
    let url = Url::parse(raw).map_err(|e| ConfigError::invalid("url", e.to_string()))?;
    if !url.username().is_empty() || url.password().is_some() {
        return Err(ConfigError::invalid(
            "url",
            "credentials in URLs are not allowed",
        ));
    }
    match url.scheme() {
        "https" => Ok(url),
        "http" if is_loopback(&url) => Ok(url),
        "http" => Err(ConfigError::invalid(
            "url",
            "plain http:// is only allowed for loopback hosts; use https://",
        )),
        other => Err(ConfigError::invalid(
            "url",
            format!("scheme {other}:// is not supported; use https://"),
        )),
    }
}

fn is_loopback(url: &Url) -> bool {
    match url.host() {
        Some(url::Host::Domain(domain)) => domain.eq_ignore_ascii_case("localhost"),
        Some(url::Host::Ipv4(ip)) => IpAddr::V4(ip).is_loopback(),
        Some(url::Host::Ipv6(ip)) => IpAddr::V6(ip).is_loopback(),
        None => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_http_is_refused_unless_loopback() {
        assert!(checked_url("https://app.meingpt.com").is_ok());
        assert!(checked_url("http://127.0.0.1:8080/jwks").is_ok());
        assert!(checked_url("http://[::1]:8080/jwks").is_ok());
        assert!(checked_url("http://localhost/jwks").is_ok());
        assert!(checked_url("http://app.meingpt.com").is_err());
        assert!(checked_url("http://10.0.0.1/jwks").is_err());
        assert!(checked_url("ftp://x/jwks").is_err());
        assert!(checked_url("https://user:pw@x/jwks").is_err());
        assert!(checked_url("not a url").is_err());
    }

    #[test]
    fn jwks_url_is_derived_from_issuer_and_organization() {
        let auth = MeinGptAuth::builder()
            .organization("clx123")
            .issuer("https://meingpt.example.com/")
            .build()
            .unwrap();
        let printed = format!("{:?}", auth.inner.verifier.jwks);
        assert!(printed.contains("https://meingpt.example.com/api/custom-apps/v1/jwks/clx123"));
        assert_eq!(auth.inner.verifier.issuer, "https://meingpt.example.com");
    }

    #[test]
    fn bad_settings_name_themselves() {
        let err = MeinGptAuth::builder().build().unwrap_err();
        assert_eq!(err.to_string(), "organization is not set");
        let err = MeinGptAuth::builder()
            .organization("a/b")
            .build()
            .unwrap_err();
        assert_eq!(err.setting(), "organization");
        let err = MeinGptAuth::builder()
            .organization("org")
            .issuer("http://meingpt.example.com")
            .build()
            .unwrap_err();
        assert_eq!(err.setting(), "issuer");
        let err = MeinGptAuth::builder()
            .organization("org")
            .realm("a\"b")
            .build()
            .unwrap_err();
        assert_eq!(err.setting(), "realm");
    }
}

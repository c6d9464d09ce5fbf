//! [`MeinGptAuthBuilder`]: the settings of a [`MeinGptAuth`], checked once
//! by [`build`](MeinGptAuthBuilder::build); the defaults are listed in the
//! [`config`](crate::config) docs.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use jsonwebtoken::Algorithm;

use super::url::{UrlError, checked_url};
use super::{ConfigError, DEFAULT_ISSUER};
use crate::auth::MeinGptAuth;
use crate::claims::ClaimRules;
use crate::clock::{Clock, SharedClock, SystemClock};
use crate::jwks::{JwksCache, JwksSettings, Location, SourceConfig, SourceId};
use crate::keys::{self, ASYMMETRIC};
use crate::token::TokenSource;
use crate::verify::{Keys, TokenProfile, Verifier, VerifierSettings};

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
}

/// A fixed verification key: a PEM public key for RS*/PS*/ES*/EdDSA, or a
/// shared secret for HS*. Checked when the configuration is built.
#[derive(Clone)]
pub struct StaticKey {
    algorithm: Algorithm,
    bytes: Vec<u8>,
}

impl StaticKey {
    /// A PEM-encoded public key (`-----BEGIN PUBLIC KEY-----` or
    /// `-----BEGIN RSA PUBLIC KEY-----`) for `algorithm`.
    pub fn pem(algorithm: Algorithm, pem: impl AsRef<[u8]>) -> Self {
        Self {
            algorithm,
            bytes: pem.as_ref().to_vec(),
        }
    }

    /// A shared secret for HS256/HS384/HS512 (at least as long as the hash).
    pub fn secret(algorithm: Algorithm, secret: impl AsRef<[u8]>) -> Self {
        Self {
            algorithm,
            bytes: secret.as_ref().to_vec(),
        }
    }

    /// The algorithm tokens must be signed with.
    pub fn algorithm(&self) -> Algorithm {
        self.algorithm
    }
}

impl fmt::Debug for StaticKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("StaticKey")
            .field("algorithm", &self.algorithm)
            .finish_non_exhaustive()
    }
}

#[derive(Clone, Debug)]
enum Mode {
    MeinGpt,
    Oidc,
    Static(StaticKey),
}

/// Builds a [`MeinGptAuth`]; see the [`config`](crate::config) docs for the defaults.
#[derive(Clone)]
#[must_use]
pub struct MeinGptAuthBuilder {
    mode: Mode,
    audiences: Vec<String>,
    issuer: String,
    jwks_url: Option<String>,
    algorithms: Option<Vec<Algorithm>>,
    role_claim: Option<String>,
    roles_case_insensitive: bool,
    roles_comma_separated: bool,
    email_fallback: bool,
    profile: TokenProfile,
    max_auth_age: Option<Duration>,
    verified_tokens: u64,
    verified_bytes: u64,
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
            .field("mode", &self.mode)
            .field("audiences", &self.audiences)
            .field("issuer", &self.issuer)
            .field("jwks_url", &self.jwks_url)
            .finish_non_exhaustive()
    }
}

impl Default for MeinGptAuthBuilder {
    fn default() -> Self {
        Self {
            mode: Mode::MeinGpt,
            audiences: Vec::new(),
            issuer: DEFAULT_ISSUER.to_owned(),
            jwks_url: None,
            algorithms: None,
            role_claim: None,
            roles_case_insensitive: false,
            roles_comma_separated: false,
            email_fallback: false,
            profile: TokenProfile::default(),
            max_auth_age: None,
            verified_tokens: 10_000,
            verified_bytes: 64 * 1024 * 1024,
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
    pub fn organization(self, id: impl Into<String>) -> Self {
        self.organizations([id])
    }

    /// Several meinGPT organizations: a token's `aud` chooses the
    /// organization, whose own JWKS then verifies it. Tokens for other
    /// organizations are refused without any fetch.
    pub fn organizations<I, T>(mut self, ids: I) -> Self
    where
        I: IntoIterator<Item = T>,
        T: Into<String>,
    {
        self.audiences = ids.into_iter().map(Into::into).collect();
        self
    }

    /// Adds an accepted audience (`aud`); for OIDC and static keys. In
    /// meinGPT mode an audience is an organization.
    pub fn audience(mut self, audience: impl Into<String>) -> Self {
        self.audiences.push(audience.into());
        self
    }

    /// The issuer (`iss`). For meinGPT: the instance origin, such as
    /// `https://meingpt.example.com` for a self-hosted instance (a trailing
    /// `/` is dropped). For OIDC and static keys: compared exactly.
    pub fn issuer(mut self, issuer: impl Into<String>) -> Self {
        self.issuer = issuer.into();
        self
    }

    /// The accepted signing algorithms (OIDC only; meinGPT accepts RS256
    /// only, a static key its own algorithm). Symmetric algorithms are never
    /// accepted with keys from a JWKS.
    pub fn algorithms(mut self, algorithms: impl IntoIterator<Item = Algorithm>) -> Self {
        self.algorithms = Some(algorithms.into_iter().collect());
        self
    }

    /// The claim that holds the user's roles (`role` for meinGPT; `roles`,
    /// `groups`, … elsewhere).
    ///
    /// A string is one role and an array of strings one role per item, each
    /// compared code point for code point: `"member,admin"`, `" admin"` and
    /// `"admin\u{3000}"` are not `admin`. Split a comma-separated string only
    /// with [`roles_comma_separated`](Self::roles_comma_separated).
    ///
    /// A dotted path reaches into nested objects, as Keycloak nests its
    /// roles: `realm_access.roles`, or `resource_access.my-client.roles` for
    /// a client's roles. A top-level claim whose name is exactly `claim`
    /// (such as `https://example.com/roles`) takes precedence over the path.
    ///
    /// ```
    /// use meingpt_auth::MeinGptAuth;
    ///
    /// let auth = MeinGptAuth::oidc("https://sso.example.com/realms/acme")
    ///     .audience("account")
    ///     .role_claim("resource_access.my-app.roles")
    ///     .build()
    ///     .unwrap();
    /// # let _ = auth;
    /// ```
    pub fn role_claim(mut self, claim: impl Into<String>) -> Self {
        self.role_claim = Some(claim.into());
        self
    }

    /// Match roles ignoring ASCII case (default: exact). For platforms whose
    /// role names vary in case; meinGPT's never do.
    pub fn roles_case_insensitive(mut self, yes: bool) -> Self {
        self.roles_case_insensitive = yes;
        self
    }

    /// Read a string role claim as a comma-separated list, dropping ASCII
    /// spaces around each item (default: a string is one role). For
    /// platforms that send roles CustomGPT-style, as `"roles": "editor,
    /// admin"`; never needed for meinGPT's `role`. An array claim is one role
    /// per item either way.
    pub fn roles_comma_separated(mut self, yes: bool) -> Self {
        self.roles_comma_separated = yes;
        self
    }

    /// When a token has no `email` claim, take [`MeinGptUser::email`] from
    /// `upn`, then `preferred_username` (default: `email` only).
    ///
    /// **Risk:** these are user names, not verified addresses. Many identity
    /// providers let users pick or change them (Keycloak and Authgear by
    /// default; Entra's `upn` is set by any user administrator), so a user
    /// can appear to have an address at any domain. Never authorize by the
    /// e-mail domain with this on; use it only for display or contact.
    pub fn email_fallback(mut self, yes: bool) -> Self {
        self.email_fallback = yes;
        self
    }

    /// Require the token's `typ` header to be this media type, such as
    /// `at+jwt` for OAuth 2.0 access tokens (RFC 9068), so that ID tokens
    /// and other JWTs from the same issuer are refused. Compared ignoring
    /// ASCII case, with or without the `application/` prefix. Default: not
    /// checked (meinGPT sends `JWT`). Wrong or missing: `401 invalid_token`.
    pub fn require_token_type(mut self, typ: impl Into<String>) -> Self {
        self.profile.token_type = Some(typ.into());
        self
    }

    /// Accept only tokens whose `azp` (authorized party: the client the
    /// token was issued to) is `client`; call again to accept several.
    /// Default: `azp` not checked. Missing or other: `401 invalid_token`.
    pub fn authorized_party(mut self, client: impl Into<String>) -> Self {
        self.profile.authorized_parties.push(client.into());
        self
    }

    /// Refuse tokens whose lifetime (`exp - iat`) exceeds `max`, such as
    /// long-lived tokens minted by a misconfigured client; `iat` becomes
    /// required. Default: not checked. Too long or no `iat`: `401
    /// invalid_token`.
    pub fn max_token_lifetime(mut self, max: Duration) -> Self {
        self.profile.max_lifetime = Some(max);
        self
    }

    /// Require the user to have authenticated within `max_age` (`auth_time`
    /// claim; the leeway applies here too). Older or missing: `401
    /// insufficient_user_authentication` with `max_age` (RFC 9470), so the
    /// client signs the user in again. An `auth_time` in the future is
    /// refused like a future `iat`.
    pub fn max_auth_age(mut self, max_age: Duration) -> Self {
        self.max_auth_age = Some(max_age);
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

    /// How many verified tokens to remember at most (default 10,000; 0
    /// turns the cache off); [`verified_token_cache_bytes`](Self::verified_token_cache_bytes)
    /// bounds the memory they take. meinGPT repeats one token for every MCP
    /// call of a chat session; a remembered token costs a keyed hash, a
    /// lookup and a comparison instead of a signature check. Entries never
    /// outlive the token's `exp`, its times are checked again on every use,
    /// and an entry counts only while the very key that verified it (same
    /// `kid`, material and algorithm) is in the current key set.
    pub fn verified_token_cache(mut self, capacity: u64) -> Self {
        self.verified_tokens = capacity;
        self
    }

    /// The memory budget of the verified-token cache in bytes (default 64
    /// MiB; 0 turns the cache off). Each entry weighs the token, the user's
    /// claims and the entry's bookkeeping, and at least this budget divided
    /// by the [`verified_token_cache`](Self::verified_token_cache) capacity,
    /// so both bounds hold; the least recently useful entries make room.
    pub fn verified_token_cache_bytes(mut self, bytes: u64) -> Self {
        self.verified_bytes = bytes;
        self
    }

    /// The time source (tests inject a clock they control).
    pub fn clock(mut self, clock: impl Clock) -> Self {
        self.clock = Arc::new(clock);
        self
    }

    /// Checks the configuration and builds the authenticator.
    pub fn build(self) -> Result<MeinGptAuth, ConfigError> {
        self.check_common()?;
        let clock = SharedClock(self.clock.clone());
        let KeySetup {
            issuer,
            algorithms,
            keys,
            audiences,
        } = match &self.mode {
            Mode::MeinGpt => self.meingpt_keys(&clock)?,
            Mode::Oidc => self.oidc_keys(&clock)?,
            Mode::Static(key) => self.static_keys(key)?,
        };
        let default_role_claim = match self.mode {
            Mode::MeinGpt => "role",
            _ => "roles",
        };
        let rules = ClaimRules {
            role_claim: self
                .role_claim
                .unwrap_or_else(|| default_role_claim.to_owned()),
            roles_case_insensitive: self.roles_case_insensitive,
            roles_comma_separated: self.roles_comma_separated,
            email_fallback: self.email_fallback,
        };
        let settings = VerifierSettings {
            algorithms,
            issuer,
            audiences,
            leeway: self.leeway,
            max_token_size: self.max_token_size,
            rules,
            max_auth_age: self.max_auth_age,
            profile: self.profile,
            verified_tokens: self.verified_tokens,
            verified_bytes: self.verified_bytes,
        };
        Ok(MeinGptAuth::from_parts(
            Verifier::new(settings, keys, clock),
            self.sources,
            self.realm,
        ))
    }

    fn check_common(&self) -> Result<(), ConfigError> {
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
        if self.role_claim.as_deref().is_some_and(str::is_empty) {
            return Err(ConfigError::invalid("role_claim", "must not be empty"));
        }
        if self.audiences.iter().any(|aud| aud.trim().is_empty()) {
            return Err(ConfigError::invalid("audience", "must not be empty"));
        }
        if self
            .profile
            .token_type
            .as_deref()
            .is_some_and(str::is_empty)
        {
            return Err(ConfigError::invalid(
                "require_token_type",
                "must not be empty",
            ));
        }
        if self.profile.authorized_parties.iter().any(String::is_empty) {
            return Err(ConfigError::invalid(
                "authorized_party",
                "must not be empty",
            ));
        }
        if self.profile.max_lifetime.is_some_and(|max| max.is_zero()) {
            return Err(ConfigError::invalid(
                "max_token_lifetime",
                "must be above zero",
            ));
        }
        Ok(())
    }

    fn jwks_cache(
        &self,
        locations: Vec<SourceConfig>,
        algorithms: Option<Vec<Algorithm>>,
        clock: &SharedClock,
    ) -> Result<Keys, ConfigError> {
        let cache = JwksCache::new(locations, algorithms, self.jwks.clone(), clock.clone())
            .map_err(|e| ConfigError::invalid("jwks_url", format!("HTTP client: {e}")))?;
        Ok(Keys::Jwks(Arc::new(cache)))
    }

    fn meingpt_keys(&self, clock: &SharedClock) -> Result<KeySetup, ConfigError> {
        if self.audiences.is_empty() {
            return Err(ConfigError::Missing {
                setting: "organization",
            });
        }
        for organization in &self.audiences {
            if !organization
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
            {
                return Err(ConfigError::invalid(
                    "organization",
                    "an organization id has only letters, digits, '-' and '_'",
                ));
            }
        }
        if self
            .algorithms
            .as_ref()
            .is_some_and(|algs| algs.as_slice() != [Algorithm::RS256])
        {
            return Err(ConfigError::invalid(
                "algorithms",
                "meinGPT signs with RS256 only",
            ));
        }
        let issuer = self.issuer.strip_suffix('/').unwrap_or(&self.issuer);
        let issuer_url = checked_url(issuer).map_err(url_setting("issuer"))?;
        if issuer_url.path() != "/" || issuer_url.query().is_some() {
            return Err(ConfigError::invalid(
                "issuer",
                "the meinGPT issuer is an origin such as https://app.meingpt.com",
            ));
        }
        let locations = match (&self.jwks_url, self.audiences.as_slice()) {
            (Some(url), [_]) => vec![SourceConfig {
                location: Location::Jwks(checked_url(url).map_err(url_setting("jwks_url"))?),
                setting: "MEINGPT_JWKS_URL / `jwks_url`",
            }],
            (Some(_), _) => {
                return Err(ConfigError::invalid(
                    "jwks_url",
                    "a JWKS URL override serves one organization only",
                ));
            }
            (None, organizations) => organizations
                .iter()
                .map(|org| {
                    checked_url(&format!("{issuer}/api/custom-apps/v1/jwks/{org}")).map(|url| {
                        SourceConfig {
                            location: Location::Jwks(url),
                            setting: "MEINGPT_ORG_ID / `organization`",
                        }
                    })
                })
                .collect::<Result<_, _>>()
                .map_err(url_setting("url"))?,
        };
        let audiences = self
            .audiences
            .iter()
            .enumerate()
            .map(|(index, org)| (org.clone(), SourceId(index)))
            .collect();
        let keys = self.jwks_cache(locations, Some(vec![Algorithm::RS256]), clock)?;
        Ok(KeySetup {
            issuer: issuer.to_owned(),
            algorithms: vec![Algorithm::RS256],
            keys,
            audiences,
        })
    }

    fn oidc_keys(&self, clock: &SharedClock) -> Result<KeySetup, ConfigError> {
        let audiences = self.required_audiences()?;
        let issuer_url = checked_url(&self.issuer).map_err(url_setting("issuer"))?;
        let algorithms = match &self.algorithms {
            Some(algs) if algs.is_empty() || algs.iter().any(|alg| !ASYMMETRIC.contains(alg)) => {
                return Err(ConfigError::invalid(
                    "algorithms",
                    "keys from a JWKS take asymmetric algorithms only (RS*, PS*, ES256, ES384, EdDSA)",
                ));
            }
            configured => configured.clone(),
        };
        let discovery = format!(
            "{}/.well-known/openid-configuration",
            issuer_url.as_str().trim_end_matches('/')
        );
        let location = match &self.jwks_url {
            // A known JWKS URL skips discovery.
            Some(url) => SourceConfig {
                location: Location::Jwks(checked_url(url).map_err(url_setting("jwks_url"))?),
                setting: "`jwks_url`",
            },
            None => SourceConfig {
                location: Location::Discovery {
                    issuer: self.issuer.clone(),
                    url: checked_url(&discovery).map_err(url_setting("url"))?,
                },
                setting: "JWT_ISS / `MeinGptAuth::oidc`",
            },
        };
        let precheck = algorithms.clone().unwrap_or_else(|| ASYMMETRIC.to_vec());
        let keys = self.jwks_cache(vec![location], algorithms, clock)?;
        Ok(KeySetup {
            issuer: self.issuer.clone(),
            algorithms: precheck,
            keys,
            audiences,
        })
    }

    fn static_keys(&self, key: &StaticKey) -> Result<KeySetup, ConfigError> {
        let audiences = self.required_audiences()?;
        if self.issuer.trim().is_empty() {
            return Err(ConfigError::Missing { setting: "issuer" });
        }
        let verifying = keys::from_config(key.algorithm, &key.bytes)
            .map_err(|error| ConfigError::invalid("static_key", error.reason))?;
        Ok(KeySetup {
            issuer: self.issuer.clone(),
            algorithms: vec![key.algorithm],
            keys: Keys::Static(Arc::new(verifying)),
            audiences,
        })
    }

    fn required_audiences(&self) -> Result<Vec<(String, SourceId)>, ConfigError> {
        if self.audiences.is_empty() {
            return Err(ConfigError::Missing {
                setting: "audience",
            });
        }
        Ok(self
            .audiences
            .iter()
            .map(|aud| (aud.clone(), SourceId(0)))
            .collect())
    }
}

/// What the mode settles: the issuer, the algorithms checked before any key
/// is looked at, where keys come from, and the audiences with their key
/// source.
struct KeySetup {
    issuer: String,
    algorithms: Vec<Algorithm>,
    keys: Keys,
    audiences: Vec<(String, SourceId)>,
}

/// A URL setting the policy refuses, as the configuration error that
/// names `setting`.
fn url_setting(setting: &'static str) -> impl Fn(UrlError) -> ConfigError {
    move |error| ConfigError::invalid(setting, error.reason)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn jwks_url_is_derived_from_issuer_and_organization() {
        let auth = MeinGptAuth::builder()
            .organization("clx123")
            .issuer("https://meingpt.example.com/")
            .build()
            .unwrap();
        let printed = format!("{:?}", auth.verifier().keys);
        assert!(printed.contains("https://meingpt.example.com/api/custom-apps/v1/jwks/clx123"));
        assert_eq!(auth.verifier().issuer, "https://meingpt.example.com");
    }

    #[test]
    fn bad_settings_name_themselves() {
        let err = MeinGptAuth::builder().build().unwrap_err();
        assert_eq!(err.to_string(), "organization is not set");
        let err = MeinGptAuth::builder()
            .organizations(["a", "b"])
            .jwks_url("https://x.example/jwks")
            .build()
            .unwrap_err();
        assert_eq!(err.setting(), "jwks_url");
        let err = MeinGptAuth::oidc("https://id.example.com")
            .build()
            .unwrap_err();
        assert_eq!(err.to_string(), "audience is not set");
        let err = MeinGptAuth::oidc("https://id.example.com")
            .audience("api")
            .algorithms([Algorithm::HS256])
            .build()
            .unwrap_err();
        assert_eq!(err.setting(), "algorithms");
        let err = MeinGptAuth::oidc("http://id.example.com")
            .audience("api")
            .build()
            .unwrap_err();
        assert_eq!(err.setting(), "issuer");
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

//! Configuration: [`MeinGptAuth`] and its [`MeinGptAuthBuilder`].
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

mod env;

use std::fmt;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use http::{HeaderMap, Response};
use jsonwebtoken::Algorithm;
use reqwest::Url;

use crate::claims::{ClaimRules, MeinGptUser};
use crate::clock::{Clock, SharedClock, SystemClock};
use crate::error::AuthError;
use crate::jwks::{JwksCache, JwksSettings, KeysError, Location, SourceConfig, SourceId};
use crate::keys::{self, ASYMMETRIC};
use crate::layer::AuthLayer;
use crate::token::{self, TokenSource};
use crate::verify::{Keys, TokenProfile, VerifiedTokens, Verifier, Verifiers};

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
    verifiers: Verifiers,
    sources: Vec<TokenSource>,
    realm: String,
}

impl fmt::Debug for MeinGptAuth {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MeinGptAuth")
            .field("issuers", &self.issuers())
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
    /// like an unknown key) without any key fetch. [`MeinGptUser::issuer`]
    /// says who vouched.
    ///
    /// Settings of the request rather than of an issuer come from the
    /// **first** configuration and are ignored in the others: token sources,
    /// realm, maximum token size, the verified-token cache (shared; each
    /// entry stays tied to the key that verified it) and the clock. Two
    /// configurations for one issuer are refused; give one configuration
    /// several audiences (or organizations) instead.
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
        Self::build_issuers(issuers.into_iter().collect()).map_err(|(_, error)| error)
    }

    /// [`from_issuers`](Self::from_issuers), telling which configuration
    /// (by index) an error is about.
    pub(crate) fn build_issuers(
        builders: Vec<MeinGptAuthBuilder>,
    ) -> Result<Self, (usize, ConfigError)> {
        let Some(first) = builders.first() else {
            return Err((0, ConfigError::Missing { setting: "issuers" }));
        };
        first.check_request().map_err(|error| (0, error))?;
        let clock = SharedClock(first.clock.clone());
        let max_token_size = first.max_token_size;
        let verified = (first.verified_tokens > 0 && first.verified_bytes > 0)
            .then(|| VerifiedTokens::new(first.verified_tokens, first.verified_bytes));
        let sources = first.sources.clone();
        let realm = first.realm.clone();
        let mut issuers: Vec<Verifier> = Vec::with_capacity(builders.len());
        for (index, builder) in builders.into_iter().enumerate() {
            let verifier = builder
                .verifier(&clock, max_token_size)
                .map_err(|error| (index, error))?;
            if issuers.iter().any(|other| other.issuer == verifier.issuer) {
                return Err((
                    index,
                    ConfigError::invalid(
                        "issuer",
                        "another configuration already has this issuer; one issuer takes one \
                         configuration (give it several audiences instead)",
                    ),
                ));
            }
            issuers.push(verifier);
        }
        Ok(MeinGptAuth {
            inner: Arc::new(Inner {
                verifiers: Verifiers {
                    issuers,
                    max_token_size,
                    verified,
                },
                sources,
                realm,
            }),
        })
    }

    /// The configured issuers (`iss`), in configuration order.
    pub(crate) fn issuers(&self) -> Vec<&str> {
        self.inner
            .verifiers
            .issuers
            .iter()
            .map(|verifier| verifier.issuer.as_str())
            .collect()
    }

    /// Configures from the environment (see the crate docs for the
    /// variables). Fails with one line naming the variable at fault.
    pub fn from_env() -> Result<Self, ConfigError> {
        env::auth_from(|name| std::env::var(name).ok())
    }

    /// Whether any variable [`from_env`](Self::from_env) reads is set: tells
    /// "configured" from "nothing configured" (where a development setup may
    /// start an embedded issuer instead).
    pub fn configured_in_env() -> bool {
        env::VARIABLES
            .iter()
            .any(|name| std::env::var_os(name).is_some())
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

    /// Fetches the issuers' keys now (and, for OIDC, their discovery
    /// documents) instead of at the first request, so that start-up can
    /// report a misconfigured or unreachable issuer. Without it, such
    /// problems show as `503` answers and a warning in the logs. With
    /// several issuers, every one is tried; the first failure is returned.
    pub async fn preload(&self) -> Result<(), KeysError> {
        let mut outcome = Ok(());
        for verifier in &self.inner.verifiers.issuers {
            if let Keys::Jwks(jwks) = &verifier.keys
                && let Err(error) = jwks.preload().await
                && outcome.is_ok()
            {
                outcome = Err(error);
            }
        }
        outcome
    }

    /// Verifies one token (a compact JWS), for uses outside HTTP middleware.
    pub async fn verify(&self, token: &str) -> Result<MeinGptUser, AuthError> {
        self.inner.verifiers.verify(token).await
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

    /// How many verified tokens are remembered now.
    #[doc(hidden)]
    pub fn verified_token_count(&self) -> u64 {
        self.inner.verifiers.verified_count()
    }

    /// The generation of the key set cached for the first organization (of
    /// the first issuer); it changes whenever a new key set is fetched.
    #[doc(hidden)]
    pub fn key_generation(&self) -> Option<u64> {
        match &self.inner.verifiers.issuers[0].keys {
            Keys::Jwks(jwks) => jwks.current_generation(SourceId(0)),
            Keys::Static(_) => None,
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

/// Builds a [`MeinGptAuth`]; see the [module docs](self) for the defaults.
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

    /// The HTTP client for JWKS and discovery fetches, for networks the
    /// crate's own client cannot cross: a corporate proxy
    /// ([`reqwest::Proxy`]), a client certificate for mTLS
    /// ([`reqwest::Identity`]), private roots
    /// ([`reqwest::ClientBuilder::tls_certs_merge`]).
    ///
    /// What still holds with this client: the
    /// [`jwks_timeout`](Self::jwks_timeout) around the whole fetch (body
    /// included), the [`jwks_max_size`](Self::jwks_max_size) cap, status
    /// `200` only, an answer from any other URL than the one requested is
    /// refused, and the rule that every configured or discovered URL is
    /// HTTPS (loopback excepted). What belongs to the client: its connect
    /// timeout, its user agent, the proxies it uses, and whether it
    /// follows a redirect before the answer is refused; build it with
    /// `redirect(reqwest::redirect::Policy::none())` so that it never
    /// does. The crate's own client never follows redirects, trusts the
    /// platform's roots plus `JWKS_CA_FILE`'s (from the environment), and
    /// honours `HTTPS_PROXY`/`NO_PROXY` as reqwest reads them.
    ///
    /// `reqwest` is a public dependency through this method: a `reqwest`
    /// major version change is a breaking change of this crate.
    ///
    /// ```
    /// use meingpt_auth::MeinGptAuth;
    ///
    /// let client = reqwest::Client::builder()
    ///     .redirect(reqwest::redirect::Policy::none())
    ///     .proxy(reqwest::Proxy::https("http://proxy.corp.example:3128").unwrap())
    ///     .build()
    ///     .unwrap();
    /// let auth = MeinGptAuth::builder()
    ///     .organization("clx0987654321")
    ///     .http_client(client)
    ///     .build()
    ///     .unwrap();
    /// # let _ = auth;
    /// ```
    pub fn http_client(mut self, client: reqwest::Client) -> Self {
        self.jwks.client = Some(client);
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
        MeinGptAuth::from_issuers([self])
    }

    /// The issuer this configuration accepts, checked: its keys, audiences
    /// and claim rules; the request-level settings come from the caller.
    fn verifier(self, clock: &SharedClock, max_token_size: usize) -> Result<Verifier, ConfigError> {
        self.check_issuer()?;
        let (issuer, algorithms, keys, audiences) = match &self.mode {
            Mode::MeinGpt => self.meingpt_keys(clock)?,
            Mode::Oidc => self.oidc_keys(clock)?,
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
        Ok(Verifier {
            algorithms,
            issuer,
            audiences,
            leeway: self.leeway,
            max_token_size,
            keys,
            rules,
            max_auth_age: self.max_auth_age,
            clock: clock.clone(),
            profile: self.profile,
        })
    }

    /// The settings of the request: token sources, realm, token size.
    fn check_request(&self) -> Result<(), ConfigError> {
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
        if self.max_token_size < 64 {
            return Err(ConfigError::invalid("max_token_size", "at least 64 bytes"));
        }
        Ok(())
    }

    /// The settings of one issuer.
    fn check_issuer(&self) -> Result<(), ConfigError> {
        if self.leeway > Duration::from_secs(300) {
            return Err(ConfigError::invalid("leeway", "at most 5 minutes"));
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

    fn meingpt_keys(&self, clock: &SharedClock) -> Result<Built, ConfigError> {
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
        let issuer_url = checked_url(issuer).map_err(|e| e.rename("issuer"))?;
        if issuer_url.path() != "/" || issuer_url.query().is_some() {
            return Err(ConfigError::invalid(
                "issuer",
                "the meinGPT issuer is an origin such as https://app.meingpt.com",
            ));
        }
        let locations = match (&self.jwks_url, self.audiences.as_slice()) {
            (Some(url), [_]) => vec![SourceConfig {
                location: Location::Jwks(checked_url(url).map_err(|e| e.rename("jwks_url"))?),
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
                .collect::<Result<_, _>>()?,
        };
        let audiences = self
            .audiences
            .iter()
            .enumerate()
            .map(|(index, org)| (org.clone(), SourceId(index)))
            .collect();
        let keys = self.jwks_cache(locations, Some(vec![Algorithm::RS256]), clock)?;
        Ok((issuer.to_owned(), vec![Algorithm::RS256], keys, audiences))
    }

    fn oidc_keys(&self, clock: &SharedClock) -> Result<Built, ConfigError> {
        let audiences = self.required_audiences()?;
        let issuer_url = checked_url(&self.issuer).map_err(|e| e.rename("issuer"))?;
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
                location: Location::Jwks(checked_url(url).map_err(|e| e.rename("jwks_url"))?),
                setting: "`jwks_url`",
            },
            None => SourceConfig {
                location: Location::Discovery {
                    issuer: self.issuer.clone(),
                    url: checked_url(&discovery)?,
                },
                setting: "JWT_ISS / `MeinGptAuth::oidc`",
            },
        };
        let precheck = algorithms.clone().unwrap_or_else(|| ASYMMETRIC.to_vec());
        let keys = self.jwks_cache(vec![location], algorithms, clock)?;
        Ok((self.issuer.clone(), precheck, keys, audiences))
    }

    fn static_keys(&self, key: &StaticKey) -> Result<Built, ConfigError> {
        let audiences = self.required_audiences()?;
        if self.issuer.trim().is_empty() {
            return Err(ConfigError::Missing { setting: "issuer" });
        }
        let verifying = keys::from_config(key.algorithm, &key.bytes, "static_key")?;
        Ok((
            self.issuer.clone(),
            vec![key.algorithm],
            Keys::Static(Arc::new(verifying)),
            audiences,
        ))
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

/// Issuer, pre-check algorithms, keys, and audiences with their key source.
type Built = (String, Vec<Algorithm>, Keys, Vec<(String, SourceId)>);

/// Parses a URL that keys or discovery may be fetched from: `https://`, or
/// `http://` to a loopback host only.
pub(crate) fn checked_url(raw: &str) -> Result<Url, ConfigError> {
    let url = Url::parse(raw).map_err(|error| {
        let found = match error {
            url::ParseError::RelativeUrlWithoutBase => "a relative URL (no scheme)".to_owned(),
            other => format!("a URL that does not parse ({other})"),
        };
        ConfigError::invalid(
            "url",
            format!(
                "expected an absolute https:// URL such as https://app.meingpt.com \
                 (http:// only for loopback hosts), found {found}"
            ),
        )
    })?;
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

pub(crate) fn is_loopback(url: &Url) -> bool {
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
        let verifier = &auth.inner.verifiers.issuers[0];
        let printed = format!("{:?}", verifier.keys);
        assert!(printed.contains("https://meingpt.example.com/api/custom-apps/v1/jwks/clx123"));
        assert_eq!(verifier.issuer, "https://meingpt.example.com");
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

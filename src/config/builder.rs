//! [`MeinGptAuthBuilder`]: the settings of a
//! [`MeinGptAuth`](crate::MeinGptAuth), checked once by
//! [`build`](MeinGptAuthBuilder::build); the defaults are listed in the
//! [`config`](crate::config) docs.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use jsonwebtoken::Algorithm;

use super::DEFAULT_ISSUER;
use crate::clock::{Clock, SystemClock};
use crate::jwks::JwksSettings;
use crate::resource::ProtectedResource;
use crate::token::TokenSource;
use crate::verify::TokenProfile;

/// A fixed verification key: a PEM public key for RS*/PS*/ES*/EdDSA, or a
/// shared secret for HS*. Checked when the configuration is built.
#[derive(Clone)]
pub struct StaticKey {
    pub(super) algorithm: Algorithm,
    pub(super) bytes: Vec<u8>,
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
pub(super) enum Mode {
    MeinGpt,
    Oidc,
    Static(StaticKey),
}

/// Builds a [`MeinGptAuth`](crate::MeinGptAuth); see the [`config`](crate::config) docs for the defaults.
#[derive(Clone)]
#[must_use]
pub struct MeinGptAuthBuilder {
    pub(super) mode: Mode,
    pub(super) audiences: Vec<String>,
    pub(super) issuer: String,
    pub(super) jwks_url: Option<String>,
    pub(super) algorithms: Option<Vec<Algorithm>>,
    pub(super) role_claim: Option<String>,
    pub(super) roles_case_insensitive: bool,
    pub(super) roles_comma_separated: bool,
    pub(super) email_fallback: bool,
    pub(super) profile: TokenProfile,
    pub(super) max_auth_age: Option<Duration>,
    pub(super) verified_tokens: u64,
    pub(super) verified_bytes: u64,
    pub(super) sources: Vec<TokenSource>,
    pub(super) realm: String,
    pub(super) leeway: Duration,
    pub(super) max_token_size: usize,
    pub(super) jwks: JwksSettings,
    pub(super) clock: Arc<dyn Clock>,
    pub(super) protected_resource: Option<ProtectedResource>,
    pub(super) resource_audience: bool,
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
            protected_resource: None,
            resource_audience: false,
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

    /// When a token has no `email` claim, take
    /// [`MeinGptUser::email`](crate::MeinGptUser::email) from `upn`, then
    /// `preferred_username` (default: `email` only).
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

    /// The protected resource this authenticator guards, for OAuth clients
    /// such as MCP clients (RFC 9728; see [`resource`](crate::resource)):
    /// its metadata is served by [`ResourceMetadata::router`](crate::ResourceMetadata::router)
    /// (or [`layer`](crate::ResourceMetadata::layer)) and named in every
    /// challenge (`resource_metadata="…"`), and issuers with
    /// [`resource_audience`](Self::resource_audience) accept tokens for it
    /// only. A setting of the request: with several issuers, set it on the
    /// first configuration.
    ///
    /// ```
    /// use meingpt_auth::{MeinGptAuth, ProtectedResource};
    ///
    /// let auth = MeinGptAuth::builder()
    ///     .organization("clx0987654321")
    ///     .protected_resource(ProtectedResource::new("https://mcp.example.com/mcp"))
    ///     .build()
    ///     .unwrap();
    /// assert_eq!(
    ///     auth.resource_metadata().unwrap().metadata_url(),
    ///     "https://mcp.example.com/.well-known/oauth-protected-resource/mcp"
    /// );
    /// ```
    pub fn protected_resource(mut self, resource: ProtectedResource) -> Self {
        self.protected_resource = Some(resource);
        self
    }

    /// Audience binding (RFC 8707), for an OpenID Connect or static-key
    /// issuer: accept only tokens whose `aud` contains the
    /// [protected resource](Self::protected_resource)'s identifier,
    /// compared exactly (instead of configured audiences, which cannot be
    /// set beside it). What the MCP specification requires of an MCP
    /// server: a token issued for another resource, even by the same
    /// authorization server, is refused (`401 invalid_token`), so a token
    /// can be neither passed through from elsewhere nor passed on.
    /// meinGPT's tokens keep their organization audience; both issuers
    /// coexist in [`MeinGptAuth::from_issuers`](crate::MeinGptAuth::from_issuers).
    pub fn resource_audience(mut self) -> Self {
        self.resource_audience = true;
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
}

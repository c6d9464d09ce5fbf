//! The issuer's signing keys, fetched from its JWKS and cached.
//!
//! A key set comes from a JWKS URL, or (OpenID Connect) from the `jwks_uri`
//! of the issuer's discovery document, which is fetched, checked (its
//! `issuer` must equal the configured one exactly) and refreshed with the
//! keys. `fetch` holds the HTTP policy, `document` reads the documents,
//! and `cache` the cache policy.
//!
//! Each key source has one immutable snapshot (its keys, algorithms,
//! when they were fetched, the last attempt and failure), replaced as a whole
//! by an atomic swap. What the cache promises:
//!
//! - **Hits never wait**: a request whose key is cached reads the snapshot
//!   without a lock and without the network.
//! - **Single flight**: concurrent misses for one source share one fetch,
//!   which runs as its own task: a caller that goes away cancels nothing.
//! - **Unknown `kid`**: at most one refetch per cooldown (default 30 s), and a
//!   bounded negative cache, so a flood of random `kid`s cannot hammer the
//!   issuer.
//! - **Refresh without stalling**: keys older than the TTL (default 10 min)
//!   keep serving while one background task fetches new ones.
//! - **The issuer's word is final**: a well-formed JWKS replaces the cached
//!   keys whatever it holds, even no usable key at all.
//! - **Stale if error**: when the issuer fails (transport error, status ≠
//!   200, oversize or malformed answer), the last good keys keep serving up
//!   to the stale limit.
//! - **Careful fetching**: timeout (default 5 s) on the whole fetch, body
//!   included, so a server that drips its answer byte by byte is given up
//!   too; body size cap; no redirects; status `200` only; HTTPS only
//!   (loopback excepted, checked at configuration). All of these hold with
//!   an application's own HTTP client too; only the connect timeout and
//!   whether a redirect is followed before its answer is refused belong to
//!   that client.
//! - **Any content type**: the `Content-Type` of the answer is not checked.
//!   Issuers serve key sets as `application/json`,
//!   `application/jwk-set+json`, `text/plain` or even `text/html`; a body
//!   that parses as a JWKS is one, and a body that does not is refused
//!   whatever its type.
//! - **Careful keys**: only signature keys (`use` absent or `sig`, `key_ops`
//!   absent or with `verify`) whose `alg`, if present, is allowed; each key
//!   verifies exactly one algorithm; RSA moduli of 2048–8192 bits; keys with
//!   private members and ambiguous duplicate `kid`s are dropped.
//! - **Verdicts tied to keys**: a refresh keeps the very same key object
//!   (`Arc`) for every key it finds unchanged (`kid`, material, algorithm),
//!   so a remembered verdict stays valid exactly as long as the current
//!   snapshot still holds the key that verified it: one pointer comparison.

mod cache;
mod document;
mod fetch;

use std::fmt;
use std::time::Duration;

use reqwest::Url;

pub(crate) use cache::{Failure, JwksCache, KeyLookup, KeyWait, Waited};

const TARGET: &str = "meingpt_auth::jwks";

/// How the key cache behaves; every value has a builder method on
/// [`MeinGptAuthBuilder`](crate::MeinGptAuthBuilder).
#[derive(Debug, Clone)]
pub(crate) struct JwksSettings {
    /// Keys older than this are refreshed in the background.
    pub(crate) ttl: Duration,
    /// How long past the TTL keys keep serving while the issuer fails.
    pub(crate) max_stale: Duration,
    /// Minimum time between two fetches caused by unknown `kid`s.
    pub(crate) cooldown: Duration,
    /// After a failed fetch, no new fetch before this; sent as `Retry-After`.
    pub(crate) retry_after: Duration,
    /// The whole fetch (connect, headers, body) must finish within this.
    pub(crate) timeout: Duration,
    /// Largest JWKS body accepted, in bytes.
    pub(crate) max_size: usize,
    /// How many unknown `kid`s are remembered.
    pub(crate) max_unknown_kids: u64,
    /// The application's own client for every fetch, instead of the
    /// crate's (see [`Fetcher`](fetch::Fetcher) for what still applies).
    pub(crate) client: Option<reqwest::Client>,
    /// Root certificates the crate's own client trusts besides the
    /// platform's (`JWKS_CA_FILE`).
    pub(crate) extra_roots: Vec<reqwest::Certificate>,
}

impl Default for JwksSettings {
    fn default() -> Self {
        Self {
            ttl: Duration::from_secs(600),
            max_stale: Duration::from_secs(6 * 3600),
            cooldown: Duration::from_secs(30),
            retry_after: Duration::from_secs(5),
            timeout: Duration::from_secs(5),
            max_size: 256 * 1024,
            max_unknown_kids: 10_000,
            client: None,
            extra_roots: Vec::new(),
        }
    }
}

/// Which configured key source: an index into the cache's sources, handed
/// out by configuration in the order the locations were given.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) struct SourceId(pub(crate) usize);
/// Where a key set is fetched from.
#[derive(Debug, Clone)]
pub(crate) enum Location {
    /// A JWKS URL.
    Jwks(Url),
    /// An OpenID Connect issuer: its discovery document names the JWKS.
    Discovery {
        /// The issuer identifier the document must name exactly.
        issuer: String,
        /// `{issuer}/.well-known/openid-configuration`.
        url: Url,
    },
}

impl Location {
    fn url(&self) -> &Url {
        match self {
            Self::Jwks(url) | Self::Discovery { url, .. } => url,
        }
    }
}

/// A configured key source: where its keys come from and the setting that
/// says so (named in [`KeysError`]).
#[derive(Debug, Clone)]
pub(crate) struct SourceConfig {
    pub(crate) location: Location,
    /// The environment variable and builder method that configure it, such
    /// as ``"MEINGPT_ORG_ID / `organization`"``.
    pub(crate) setting: &'static str,
}

impl SourceConfig {
    /// Why a fetch from this source failed, in words; a `404` says what it
    /// most likely means here.
    fn explain(&self, error: &fetch::FetchError) -> String {
        if !matches!(error, fetch::FetchError::Status(404)) {
            return error.to_string();
        }
        let hint = match &self.location {
            Location::Discovery { .. } => {
                "the issuer may be wrong (it must be exactly the `iss` its tokens carry)"
            }
            // Derived from the organization id and the issuer.
            Location::Jwks(_) if self.setting.starts_with("MEINGPT_ORG_ID") => {
                "no key set here; the organization id or the issuer (MEINGPT_ISSUER / \
                 `issuer`) may be wrong"
            }
            Location::Jwks(_) => "no key set here; the JWKS URL may be wrong",
        };
        format!("{error}: {hint}")
    }
}

/// Why the issuer's keys could not be loaded (see
/// [`MeinGptAuth::preload`](crate::MeinGptAuth::preload)).
///
/// Its `Display` is one line: the URL, the setting that configured it, and
/// what went wrong.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeysError {
    url: String,
    setting: &'static str,
    reason: String,
}

impl KeysError {
    /// The URL that failed (JWKS or discovery document).
    pub fn url(&self) -> &str {
        &self.url
    }

    /// The environment variable and builder method that configured the URL,
    /// such as ``"MEINGPT_ORG_ID / `organization`"``.
    pub fn setting(&self) -> &'static str {
        self.setting
    }
}

impl fmt::Display for KeysError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "cannot load signing keys from {} (set by {}): {}",
            self.url, self.setting, self.reason
        )
    }
}

impl std::error::Error for KeysError {}

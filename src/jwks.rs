//! The issuer's signing keys, fetched from its JWKS and cached.
//!
//! A key set comes from a JWKS URL, or (OpenID Connect) from the `jwks_uri`
//! of the issuer's discovery document, which is fetched, checked (its
//! `issuer` must equal the configured one exactly) and refreshed with the
//! keys.
//!
//! The key cache holds one key set for each configured JWKS URL in a `moka`
//! cache. What it promises:
//!
//! - **Hits never wait**: a request whose key is cached reads it without a
//!   lock and without the network.
//! - **Single flight**: concurrent misses for one URL share one fetch.
//! - **Unknown `kid`**: at most one refetch per cooldown (default 30 s), and a
//!   bounded negative cache, so a flood of random `kid`s cannot hammer the
//!   issuer.
//! - **Refresh without stalling**: keys older than the TTL (default 10 min)
//!   keep serving while one background task fetches new ones.
//! - **Stale if error**: when the issuer fails (status ≠ 200, garbage, no
//!   answer), the last good keys keep serving up to the stale limit.
//! - **Careful fetching**: timeout (default 5 s) on the whole fetch, body
//!   included, so a server that drips its answer byte by byte is given up
//!   too; body size cap; no redirects; status `200` only; HTTPS only
//!   (loopback excepted, checked at configuration).
//! - **Any content type**: the `Content-Type` of the answer is not checked.
//!   Issuers serve key sets as `application/json`,
//!   `application/jwk-set+json`, `text/plain` or even `text/html`; a body
//!   that parses as a JWKS is one, and a body that does not is refused
//!   whatever its type.
//! - **Careful keys**: only signature keys (`use` absent or `sig`) whose
//!   `alg`, if present, is allowed; RSA moduli of 2048–8192 bits; keys with
//!   private members and ambiguous duplicate `kid`s are dropped.

use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use jsonwebtoken::Algorithm;
use reqwest::Url;
use serde_json::Value;
use tokio::sync::Mutex;

use crate::clock::SharedClock;
use crate::config::checked_url;
use crate::error::{AuthError, InvalidToken};
use crate::json::parse_object;
use crate::keys::{ASYMMETRIC, VerifyingKey, from_jwk};

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
        }
    }
}

/// One fetched key set.
pub(crate) struct KeySet {
    keys: Vec<Arc<VerifyingKey>>,
    /// The algorithms tokens verified with this set may use.
    algorithms: Vec<Algorithm>,
    fetched_at: Duration,
    generation: u64,
}

impl KeySet {
    pub(crate) fn generation(&self) -> u64 {
        self.generation
    }

    /// The key for `kid` that fits `alg`; without a `kid`, the only fitting key.
    fn find(&self, kid: Option<&str>, alg: Algorithm) -> Option<&Arc<VerifyingKey>> {
        match kid {
            Some(kid) => self
                .keys
                .iter()
                .find(|key| key.kid() == Some(kid))
                .filter(|key| key.fits(alg)),
            None => {
                let mut fitting = self.keys.iter().filter(|key| key.fits(alg));
                match (fitting.next(), fitting.next()) {
                    (Some(only), None) => Some(only),
                    _ => None,
                }
            }
        }
    }
}

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

struct Source {
    location: Location,
    /// Held while fetching: concurrent fetchers queue here and find the
    /// fresh key set when it is their turn (single flight).
    gate: Mutex<FetchState>,
    refreshing: AtomicBool,
    /// When the last fetch started (nanoseconds since the epoch; 0: never).
    /// Read without the gate by the unknown-`kid` fast path.
    last_attempt: AtomicU64,
    /// Counts refreshes that dropped a key; verified tokens remembered
    /// under an older count are verified again.
    removals: AtomicU64,
    /// When the cached key set was fetched (nanoseconds since the epoch;
    /// 0: none), for verified-token cache hits that never look at the set.
    fetched_at: AtomicU64,
}

#[derive(Default)]
struct FetchState {
    last_failure: Option<Duration>,
}

/// The key sets of every configured JWKS URL. See the [module docs](self).
pub(crate) struct JwksCache {
    sources: Vec<Source>,
    sets: moka::sync::Cache<usize, Arc<KeySet>>,
    /// `kid`s found missing, with the generation of the key set they were
    /// missing from.
    unknown_kids: moka::sync::Cache<(usize, Box<str>), u64>,
    /// Configured algorithms; `None`: those the discovery document lists.
    algorithms: Option<Vec<Algorithm>>,
    client: reqwest::Client,
    settings: JwksSettings,
    clock: SharedClock,
    generations: AtomicU64,
}

impl fmt::Debug for JwksCache {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("JwksCache")
            .field(
                "urls",
                &self
                    .sources
                    .iter()
                    .map(|s| s.location.url().as_str())
                    .collect::<Vec<_>>(),
            )
            .field("settings", &self.settings)
            .finish_non_exhaustive()
    }
}

/// Why the issuer's keys could not be loaded (see
/// [`MeinGptAuth::preload`](crate::MeinGptAuth::preload)).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeysError {
    url: String,
    reason: String,
}

impl KeysError {
    /// The URL that failed (JWKS or discovery document).
    pub fn url(&self) -> &str {
        &self.url
    }
}

impl fmt::Display for KeysError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "cannot load signing keys from {}: {}",
            self.url, self.reason
        )
    }
}

impl std::error::Error for KeysError {}

/// Why a fetch produced no key set. Never carries the body.
#[derive(Debug)]
pub(crate) enum FetchError {
    Status(u16),
    TooLarge(usize),
    TimedOut(Duration),
    Transport(reqwest::Error),
    NotAJwks,
    NoUsableKey,
    NotADiscoveryDocument,
    IssuerMismatch,
    BadJwksUri(String),
    NoUsableAlgorithm,
}

impl fmt::Display for FetchError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Status(code) => write!(f, "the issuer answered HTTP {code}"),
            Self::TooLarge(cap) => write!(f, "the JWKS is larger than {cap} bytes"),
            Self::TimedOut(after) => write!(f, "no complete answer within {after:?}"),
            Self::Transport(error) => {
                // reqwest's own message ("error decoding response body") does
                // not say what went wrong; its sources do.
                write!(f, "{error}")?;
                let mut cause = std::error::Error::source(error);
                while let Some(inner) = cause {
                    write!(f, ": {inner}")?;
                    cause = inner.source();
                }
                Ok(())
            }
            Self::NotAJwks => f.write_str("the body is not a JSON Web Key Set"),
            Self::NoUsableKey => f.write_str("the JWKS holds no usable signing key"),
            Self::NotADiscoveryDocument => {
                f.write_str("the body is not an OpenID Connect discovery document")
            }
            Self::IssuerMismatch => {
                f.write_str("the discovery document names another issuer than the configured one")
            }
            Self::BadJwksUri(reason) => write!(f, "the discovery document's jwks_uri {reason}"),
            Self::NoUsableAlgorithm => f.write_str(
                "the discovery document lists no asymmetric signing algorithm this crate verifies",
            ),
        }
    }
}

impl JwksCache {
    pub(crate) fn new(
        locations: Vec<Location>,
        algorithms: Option<Vec<Algorithm>>,
        settings: JwksSettings,
        clock: SharedClock,
    ) -> Result<Self, reqwest::Error> {
        let client = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .timeout(settings.timeout)
            .connect_timeout(settings.timeout)
            .user_agent(concat!("meingpt-auth/", env!("CARGO_PKG_VERSION")))
            .build()?;
        let sources = locations
            .into_iter()
            .map(|location| Source {
                location,
                gate: Mutex::new(FetchState::default()),
                refreshing: AtomicBool::new(false),
                last_attempt: AtomicU64::new(0),
                removals: AtomicU64::new(0),
                fetched_at: AtomicU64::new(0),
            })
            .collect::<Vec<_>>();
        Ok(Self {
            sets: moka::sync::Cache::new(sources.len() as u64),
            unknown_kids: moka::sync::Cache::builder()
                .max_capacity(settings.max_unknown_kids)
                .time_to_live(settings.cooldown.max(Duration::from_millis(1)))
                .build(),
            sources,
            algorithms,
            client,
            settings,
            clock,
            generations: AtomicU64::new(0),
        })
    }

    /// The key that verifies a token with this `kid` and `alg` from source
    /// `index`, fetching only when the cache rules allow it.
    pub(crate) async fn key(
        self: &Arc<Self>,
        index: usize,
        kid: Option<&str>,
        alg: Algorithm,
    ) -> Result<Arc<VerifyingKey>, AuthError> {
        let now = self.clock.now();
        let set = match self.sets.get(&index) {
            Some(set) if self.usable(&set, now) => {
                if now >= set.fetched_at + self.settings.ttl {
                    self.refresh_in_background(index);
                }
                set
            }
            _ => self.load(index).await?,
        };
        if !set.algorithms.contains(&alg) {
            return Err(InvalidToken::UnsupportedAlgorithm.into());
        }
        if let Some(key) = set.find(kid, alg) {
            return Ok(key.clone());
        }
        // A fresh fetch only helps a token that names a key we do not know.
        let Some(kid) = kid.filter(|kid| !set.keys.iter().any(|k| k.kid() == Some(*kid))) else {
            return Err(InvalidToken::UnknownKey.into());
        };
        // A kid already found missing from this very key set, while no
        // refetch is allowed yet: refuse without queueing for the gate.
        let remembered = (index, Box::<str>::from(kid));
        if self.unknown_kids.get(&remembered) == Some(set.generation)
            && self.cooling_down(index, now)
        {
            return Err(InvalidToken::UnknownKey.into());
        }
        let set = self.refetch_for_unknown_kid(index, &set).await;
        match set.find(Some(kid), alg) {
            Some(key) => Ok(key.clone()),
            None => {
                self.unknown_kids.insert(remembered, set.generation);
                Err(InvalidToken::UnknownKey.into())
            }
        }
    }

    /// Fetches every source that has no usable key set now, and says why
    /// the first that fails failed.
    pub(crate) async fn preload(&self) -> Result<(), KeysError> {
        for (index, source) in self.sources.iter().enumerate() {
            let mut state = source.gate.lock().await;
            if self
                .sets
                .get(&index)
                .is_some_and(|set| self.usable(&set, self.clock.now()))
            {
                continue;
            }
            self.fetch_into(index, &mut state)
                .await
                .map_err(|error| KeysError {
                    url: source.location.url().to_string(),
                    reason: error.to_string(),
                })?;
        }
        Ok(())
    }

    /// For a verified-token cache hit on source `index`: starts a
    /// background refresh when the keys are due one (so that a key the
    /// issuer dropped is noticed even while every token is a cache hit), and
    /// says whether the keys may still be trusted (not past the stale limit).
    pub(crate) fn keys_trusted(self: &Arc<Self>, index: usize, now: Duration) -> bool {
        let fetched = self.sources[index].fetched_at.load(Ordering::Acquire);
        if fetched == 0 {
            return false;
        }
        let fetched = Duration::from_nanos(fetched);
        if now >= fetched + self.settings.ttl {
            self.refresh_in_background(index);
        }
        now < fetched + self.settings.ttl + self.settings.max_stale
    }

    /// How many refreshes of source `index` have dropped a key so far.
    pub(crate) fn removals(&self, index: usize) -> u64 {
        self.sources[index].removals.load(Ordering::Acquire)
    }

    /// Whether the last fetch of source `index` was less than a cooldown ago.
    fn cooling_down(&self, index: usize, now: Duration) -> bool {
        let last = self.sources[index].last_attempt.load(Ordering::Acquire);
        last != 0 && now < Duration::from_nanos(last) + self.settings.cooldown
    }

    /// The generation of the key set currently cached for `index`, if any.
    pub(crate) fn current_generation(&self, index: usize) -> Option<u64> {
        self.sets.get(&index).map(|set| set.generation())
    }

    fn usable(&self, set: &KeySet, now: Duration) -> bool {
        now < set.fetched_at + self.settings.ttl + self.settings.max_stale
    }

    /// Cold start (or keys past the stale limit): wait for a fetch, shared
    /// with every concurrent caller.
    async fn load(&self, index: usize) -> Result<Arc<KeySet>, AuthError> {
        let source = &self.sources[index];
        let mut state = source.gate.lock().await;
        let now = self.clock.now();
        if let Some(set) = self.sets.get(&index)
            && self.usable(&set, now)
        {
            return Ok(set);
        }
        if let Some(failed_at) = state.last_failure {
            let retry_at = failed_at + self.settings.retry_after;
            if now < retry_at {
                return Err(AuthError::KeysUnavailable {
                    retry_after: retry_at - now,
                });
            }
        }
        self.fetch_into(index, &mut state)
            .await
            .map_err(|_| AuthError::KeysUnavailable {
                retry_after: self.settings.retry_after,
            })
    }

    async fn refetch_for_unknown_kid(&self, index: usize, seen: &Arc<KeySet>) -> Arc<KeySet> {
        let source = &self.sources[index];
        let mut state = source.gate.lock().await;
        let current = self.sets.get(&index).unwrap_or_else(|| seen.clone());
        if current.generation != seen.generation {
            // Someone fetched while we queued: use theirs.
            return current;
        }
        let now = self.clock.now();
        let cooled_down = !self.cooling_down(index, now);
        let backed_off = state
            .last_failure
            .is_none_or(|at| now >= at + self.settings.retry_after);
        if !(cooled_down && backed_off) {
            return current;
        }
        tracing::debug!(target: TARGET, url = %source.location.url(), "unknown kid, refetching JWKS");
        self.fetch_into(index, &mut state).await.unwrap_or(current)
    }

    fn refresh_in_background(self: &Arc<Self>, index: usize) {
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            return;
        };
        let source = &self.sources[index];
        if source.refreshing.swap(true, Ordering::AcqRel) {
            return;
        }
        let cache = Arc::clone(self);
        runtime.spawn(async move {
            let source = &cache.sources[index];
            {
                let mut state = source.gate.lock().await;
                let now = cache.clock.now();
                let due = cache
                    .sets
                    .get(&index)
                    .is_none_or(|set| now >= set.fetched_at + cache.settings.ttl);
                let backed_off = state
                    .last_failure
                    .is_none_or(|at| now >= at + cache.settings.retry_after);
                if due && backed_off {
                    tracing::debug!(target: TARGET, url = %source.location.url(), "refreshing JWKS");
                    let _ = cache.fetch_into(index, &mut state).await;
                }
            }
            source.refreshing.store(false, Ordering::Release);
        });
    }

    /// Fetches source `index` and, on success, caches the new key set.
    /// The caller holds the source's gate.
    async fn fetch_into(
        &self,
        index: usize,
        state: &mut FetchState,
    ) -> Result<Arc<KeySet>, FetchError> {
        let source = &self.sources[index];
        let started = self.clock.now().as_nanos().max(1) as u64;
        source.last_attempt.store(started, Ordering::Release);
        match self.fetch(&source.location).await {
            Ok((keys, algorithms)) => {
                state.last_failure = None;
                if let Some(old) = self.sets.get(&index) {
                    let dropped = old
                        .keys
                        .iter()
                        .any(|gone| !keys.iter().any(|key| key.same_material(gone)));
                    if dropped || old.algorithms != algorithms {
                        source.removals.fetch_add(1, Ordering::AcqRel);
                    }
                }
                let set = Arc::new(KeySet {
                    keys,
                    algorithms,
                    fetched_at: self.clock.now(),
                    generation: self.generations.fetch_add(1, Ordering::Relaxed) + 1,
                });
                self.sets.insert(index, set.clone());
                source
                    .fetched_at
                    .store(set.fetched_at.as_nanos().max(1) as u64, Ordering::Release);
                Ok(set)
            }
            Err(error) => {
                state.last_failure = Some(self.clock.now());
                let stale = self.sets.contains_key(&index);
                tracing::warn!(
                    target: TARGET,
                    url = %source.location.url(),
                    %error,
                    serving_stale_keys = stale,
                    "JWKS fetch failed"
                );
                Err(error)
            }
        }
    }

    async fn fetch(
        &self,
        location: &Location,
    ) -> Result<(Vec<Arc<VerifyingKey>>, Vec<Algorithm>), FetchError> {
        let timeout = self.settings.timeout;
        tokio::time::timeout(timeout, self.fetch_keys(location))
            .await
            .map_err(|_| FetchError::TimedOut(timeout))?
    }

    async fn fetch_keys(
        &self,
        location: &Location,
    ) -> Result<(Vec<Arc<VerifyingKey>>, Vec<Algorithm>), FetchError> {
        let (jwks_url, algorithms) = match location {
            Location::Jwks(url) => (
                url.clone(),
                self.algorithms
                    .clone()
                    .unwrap_or_else(|| vec![Algorithm::RS256]),
            ),
            Location::Discovery { issuer, url } => {
                let document = self.fetch_body(url).await?;
                let discovered = parse_discovery(&document, issuer, self.algorithms.as_deref())?;
                tracing::debug!(target: TARGET, jwks_uri = %discovered.0, "discovery document fetched");
                discovered
            }
        };
        let body = self.fetch_body(&jwks_url).await?;
        let (keys, skipped) = parse_jwks(&body, &algorithms)?;
        tracing::info!(
            target: TARGET,
            url = %jwks_url,
            keys = keys.len(),
            skipped,
            "JWKS fetched"
        );
        Ok((keys, algorithms))
    }

    async fn fetch_body(&self, url: &Url) -> Result<Vec<u8>, FetchError> {
        let cap = self.settings.max_size;
        // The client's timeout and the one around the whole fetch are the
        // same; whichever fires first, a timeout is reported as one.
        let transport = |error: reqwest::Error| {
            if error.is_timeout() {
                FetchError::TimedOut(self.settings.timeout)
            } else {
                FetchError::Transport(error)
            }
        };
        let mut response = self
            .client
            .get(url.clone())
            .header(
                http::header::ACCEPT,
                "application/jwk-set+json, application/json",
            )
            .send()
            .await
            .map_err(transport)?;
        if response.status() != http::StatusCode::OK {
            return Err(FetchError::Status(response.status().as_u16()));
        }
        if response
            .content_length()
            .is_some_and(|len| len > cap as u64)
        {
            return Err(FetchError::TooLarge(cap));
        }
        let mut body = Vec::new();
        while let Some(chunk) = response.chunk().await.map_err(transport)? {
            if body.len() + chunk.len() > cap {
                return Err(FetchError::TooLarge(cap));
            }
            body.extend_from_slice(&chunk);
        }
        Ok(body)
    }
}

/// Parses a JWKS document into the keys usable with `algorithms`; returns
/// them with the number of keys skipped.
pub(crate) fn parse_jwks(
    body: &[u8],
    algorithms: &[Algorithm],
) -> Result<(Vec<Arc<VerifyingKey>>, usize), FetchError> {
    let document = parse_object(body).ok_or(FetchError::NotAJwks)?;
    let Some(Value::Array(entries)) = document.get("keys") else {
        return Err(FetchError::NotAJwks);
    };
    let mut keys: Vec<VerifyingKey> = Vec::with_capacity(entries.len());
    let mut skipped = 0;
    let mut ambiguous: Vec<String> = Vec::new();
    for entry in entries {
        let Some(key) = entry.as_object().and_then(|jwk| from_jwk(jwk, algorithms)) else {
            skipped += 1;
            continue;
        };
        if let Some(kid) = key.kid()
            && let Some(existing) = keys.iter().find(|k| k.kid() == Some(kid))
        {
            if !existing.same_material(&key) && !ambiguous.iter().any(|a| a == kid) {
                ambiguous.push(kid.to_owned());
            }
            skipped += 1;
            continue;
        }
        keys.push(key);
    }
    if !ambiguous.is_empty() {
        tracing::warn!(
            target: TARGET,
            count = ambiguous.len(),
            "JWKS names different keys with the same kid; those keys are not used"
        );
        keys.retain(|key| {
            let drop = key
                .kid()
                .is_some_and(|kid| ambiguous.iter().any(|a| a == kid));
            skipped += usize::from(drop);
            !drop
        });
    }
    if keys.is_empty() {
        return Err(FetchError::NoUsableKey);
    }
    Ok((keys.into_iter().map(Arc::new).collect(), skipped))
}

/// Reads a discovery document: its `issuer` must be `issuer` exactly
/// (OpenID Connect Discovery §4.3); returns the `jwks_uri` and the
/// algorithms to accept (configured, or the asymmetric ones it lists).
fn parse_discovery(
    body: &[u8],
    issuer: &str,
    configured: Option<&[Algorithm]>,
) -> Result<(Url, Vec<Algorithm>), FetchError> {
    let document = parse_object(body).ok_or(FetchError::NotADiscoveryDocument)?;
    match document.get("issuer") {
        Some(Value::String(named)) if named == issuer => {}
        Some(Value::String(_)) => return Err(FetchError::IssuerMismatch),
        _ => return Err(FetchError::NotADiscoveryDocument),
    }
    let Some(Value::String(jwks_uri)) = document.get("jwks_uri") else {
        return Err(FetchError::NotADiscoveryDocument);
    };
    let jwks_url = checked_url(jwks_uri).map_err(|e| {
        FetchError::BadJwksUri(match e {
            crate::ConfigError::Invalid { reason, .. } => reason,
            other => other.to_string(),
        })
    })?;
    let algorithms = match configured {
        Some(configured) => configured.to_vec(),
        None => match document.get("id_token_signing_alg_values_supported") {
            None => vec![Algorithm::RS256],
            Some(Value::Array(names)) => {
                let listed: Vec<Algorithm> = names
                    .iter()
                    .filter_map(Value::as_str)
                    .filter_map(|name| name.parse::<Algorithm>().ok())
                    .filter(|alg| ASYMMETRIC.contains(alg))
                    .collect();
                if listed.is_empty() {
                    return Err(FetchError::NoUsableAlgorithm);
                }
                listed
            }
            Some(_) => return Err(FetchError::NotADiscoveryDocument),
        },
    };
    Ok((jwks_url, algorithms))
}

#[cfg(test)]
mod tests {
    use super::*;
    use base64::Engine;
    use base64::engine::general_purpose::URL_SAFE_NO_PAD;
    use serde_json::json;

    fn rsa_jwk(bits: usize) -> Value {
        let mut n = vec![0xC5u8; bits / 8];
        n[bits / 8 - 1] |= 1;
        json!({"kty": "RSA", "kid": "k1", "n": URL_SAFE_NO_PAD.encode(&n), "e": "AQAB"})
    }

    fn parse(keys: Vec<Value>) -> Result<(Vec<Arc<VerifyingKey>>, usize), FetchError> {
        let doc = serde_json::to_vec(&json!({ "keys": keys })).unwrap();
        parse_jwks(&doc, &[Algorithm::RS256])
    }

    #[test]
    fn rsa_keys_between_2048_and_8192_bits_are_kept() {
        for bits in [2048, 4096, 8192] {
            assert_eq!(parse(vec![rsa_jwk(bits)]).unwrap().0.len(), 1, "{bits}");
        }
        for bits in [1024, 2040, 8200] {
            assert!(
                matches!(parse(vec![rsa_jwk(bits)]), Err(FetchError::NoUsableKey)),
                "{bits}"
            );
        }
    }

    #[test]
    fn keys_for_encryption_with_private_members_or_other_algorithms_are_skipped() {
        let mut enc = rsa_jwk(2048);
        enc["use"] = json!("enc");
        let mut private = rsa_jwk(2048);
        private["d"] = json!("AQAB");
        let mut es = rsa_jwk(2048);
        es["alg"] = json!("RS512");
        let mut good = rsa_jwk(2048);
        good["kid"] = json!("good");
        good["alg"] = json!("RS256");
        let (keys, skipped) = parse(vec![enc, private, es, good]).unwrap();
        assert_eq!(keys.len(), 1);
        assert_eq!(keys[0].kid(), Some("good"));
        assert_eq!(skipped, 3);
    }

    #[test]
    fn different_keys_sharing_a_kid_are_dropped_and_identical_ones_merged() {
        let a = rsa_jwk(2048);
        let mut b = rsa_jwk(4096);
        b["kid"] = json!("k1");
        assert!(matches!(
            parse(vec![a.clone(), b]),
            Err(FetchError::NoUsableKey)
        ));
        assert_eq!(parse(vec![a.clone(), a]).unwrap().0.len(), 1);
    }

    #[test]
    fn documents_that_are_not_key_sets_are_refused() {
        for body in [
            &b"[]"[..],
            b"{\"keys\":{}}",
            b"not json",
            b"{\"keys\":[],\"keys\":[]}",
        ] {
            assert!(matches!(
                parse_jwks(body, &[Algorithm::RS256]),
                Err(FetchError::NotAJwks)
            ));
        }
    }

    #[test]
    fn without_kid_only_a_single_fitting_key_is_chosen() {
        let mut a = rsa_jwk(2048);
        a.as_object_mut().unwrap().remove("kid");
        let set = KeySet {
            keys: parse(vec![a.clone()]).unwrap().0,
            algorithms: vec![Algorithm::RS256],
            fetched_at: Duration::ZERO,
            generation: 1,
        };
        assert!(set.find(None, Algorithm::RS256).is_some());
        let mut b = rsa_jwk(3072);
        b["kid"] = json!("k2");
        let set = KeySet {
            keys: parse(vec![a, b]).unwrap().0,
            algorithms: vec![Algorithm::RS256],
            fetched_at: Duration::ZERO,
            generation: 1,
        };
        assert!(set.find(None, Algorithm::RS256).is_none());
        assert!(set.find(Some("k2"), Algorithm::RS256).is_some());
        assert!(set.find(Some("k2"), Algorithm::ES256).is_none());
    }

    #[test]
    fn discovery_document_must_name_the_configured_issuer_exactly() {
        let doc = |issuer: &str| {
            json!({"issuer": issuer, "jwks_uri": "https://id.example.com/jwks"}).to_string()
        };
        let ok = parse_discovery(
            doc("https://id.example.com").as_bytes(),
            "https://id.example.com",
            None,
        );
        let (url, algorithms) = ok.unwrap();
        assert_eq!(url.as_str(), "https://id.example.com/jwks");
        assert_eq!(algorithms, vec![Algorithm::RS256]);
        for other in [
            "https://id.example.com/",
            "https://evil.example.com",
            "HTTPS://id.example.com",
        ] {
            assert!(matches!(
                parse_discovery(doc(other).as_bytes(), "https://id.example.com", None),
                Err(FetchError::IssuerMismatch)
            ));
        }
    }

    #[test]
    fn discovered_algorithms_keep_only_asymmetric_ones() {
        let doc = json!({
            "issuer": "https://id.example.com",
            "jwks_uri": "https://id.example.com/jwks",
            "id_token_signing_alg_values_supported": ["HS256", "none", "ES256", "RS256"]
        })
        .to_string();
        let (_, algorithms) =
            parse_discovery(doc.as_bytes(), "https://id.example.com", None).unwrap();
        assert_eq!(algorithms, vec![Algorithm::ES256, Algorithm::RS256]);
        let only_hmac = json!({
            "issuer": "https://id.example.com",
            "jwks_uri": "https://id.example.com/jwks",
            "id_token_signing_alg_values_supported": ["HS256", "none"]
        })
        .to_string();
        assert!(matches!(
            parse_discovery(only_hmac.as_bytes(), "https://id.example.com", None),
            Err(FetchError::NoUsableAlgorithm)
        ));
    }

    #[test]
    fn discovered_jwks_uri_must_be_https_or_loopback() {
        let doc =
            json!({"issuer": "https://id.example.com", "jwks_uri": "http://evil.example.com/jwks"})
                .to_string();
        assert!(matches!(
            parse_discovery(doc.as_bytes(), "https://id.example.com", None),
            Err(FetchError::BadJwksUri(_))
        ));
    }
}

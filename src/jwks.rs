//! The issuer's signing keys, fetched from its JWKS and cached.
//!
//! [`JwksCache`] holds one key set for each configured JWKS URL in a `moka`
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
//! - **Careful fetching**: timeout (default 5 s), body size cap, no
//!   redirects, HTTPS only (loopback excepted, checked at configuration).
//! - **Careful keys**: only signature keys (`use` absent or `sig`) whose
//!   `alg`, if present, is allowed; RSA moduli of 2048–8192 bits; keys with
//!   private members and ambiguous duplicate `kid`s are dropped.

use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::{Algorithm, DecodingKey};
use reqwest::Url;
use serde_json::{Map, Value};
use tokio::sync::Mutex;

use crate::clock::SharedClock;
use crate::error::{AuthError, InvalidToken};
use crate::json::parse_object;

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

/// A public key from the JWKS, parsed once when the key set is fetched.
pub(crate) struct VerifyingKey {
    kid: Option<String>,
    alg: Option<Algorithm>,
    kind: KeyKind,
    key: DecodingKey,
    /// The public key material, to tell identical duplicates from conflicts.
    material: Vec<u8>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum KeyKind {
    Rsa,
    Ec(Algorithm),
    Ed25519,
}

impl VerifyingKey {
    fn fits(&self, alg: Algorithm) -> bool {
        let kind_fits = match self.kind {
            KeyKind::Rsa => matches!(
                alg,
                Algorithm::RS256
                    | Algorithm::RS384
                    | Algorithm::RS512
                    | Algorithm::PS256
                    | Algorithm::PS384
                    | Algorithm::PS512
            ),
            KeyKind::Ec(curve_alg) => alg == curve_alg,
            KeyKind::Ed25519 => alg == Algorithm::EdDSA,
        };
        kind_fits && self.alg.is_none_or(|own| own == alg)
    }

    /// Whether `signature` over `message` verifies with this key.
    pub(crate) fn verify(&self, alg: Algorithm, message: &[u8], signature_b64: &str) -> bool {
        jsonwebtoken::crypto::verify(signature_b64, message, &self.key, alg).unwrap_or(false)
    }

    fn same_material(&self, other: &VerifyingKey) -> bool {
        self.kind == other.kind && self.material == other.material
    }
}

/// One fetched key set.
pub(crate) struct KeySet {
    keys: Vec<Arc<VerifyingKey>>,
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
                .find(|key| key.kid.as_deref() == Some(kid))
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

struct Source {
    url: Url,
    /// Held while fetching: concurrent fetchers queue here and find the
    /// fresh key set when it is their turn (single flight).
    gate: Mutex<FetchState>,
    refreshing: AtomicBool,
}

#[derive(Default)]
struct FetchState {
    last_attempt: Option<Duration>,
    last_failure: Option<Duration>,
}

/// The key sets of every configured JWKS URL. See the [module docs](self).
pub(crate) struct JwksCache {
    sources: Vec<Source>,
    sets: moka::sync::Cache<usize, Arc<KeySet>>,
    unknown_kids: moka::sync::Cache<(usize, Box<str>), Duration>,
    algorithms: Vec<Algorithm>,
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
                    .map(|s| s.url.as_str())
                    .collect::<Vec<_>>(),
            )
            .field("settings", &self.settings)
            .finish_non_exhaustive()
    }
}

/// Why a fetch produced no key set. Never carries the body.
#[derive(Debug)]
pub(crate) enum FetchError {
    Status(u16),
    TooLarge(usize),
    TimedOut(Duration),
    Transport(reqwest::Error),
    NotAJwks,
    NoUsableKey,
}

impl fmt::Display for FetchError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Status(code) => write!(f, "the issuer answered HTTP {code}"),
            Self::TooLarge(cap) => write!(f, "the JWKS is larger than {cap} bytes"),
            Self::TimedOut(after) => write!(f, "no complete answer within {after:?}"),
            Self::Transport(error) => write!(f, "{error}"),
            Self::NotAJwks => f.write_str("the body is not a JSON Web Key Set"),
            Self::NoUsableKey => f.write_str("the JWKS holds no usable signing key"),
        }
    }
}

impl JwksCache {
    pub(crate) fn new(
        urls: Vec<Url>,
        algorithms: Vec<Algorithm>,
        settings: JwksSettings,
        clock: SharedClock,
    ) -> Result<Self, reqwest::Error> {
        let client = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .timeout(settings.timeout)
            .connect_timeout(settings.timeout)
            .user_agent(concat!("meingpt-auth/", env!("CARGO_PKG_VERSION")))
            .build()?;
        let sources = urls
            .into_iter()
            .map(|url| Source {
                url,
                gate: Mutex::new(FetchState::default()),
                refreshing: AtomicBool::new(false),
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
        if let Some(key) = set.find(kid, alg) {
            return Ok(key.clone());
        }
        // A fresh fetch only helps a token that names a key we do not know.
        let Some(kid) = kid.filter(|kid| !set.keys.iter().any(|k| k.kid.as_deref() == Some(*kid)))
        else {
            return Err(InvalidToken::UnknownKey.into());
        };
        let remembered = (index, Box::<str>::from(kid));
        if let Some(seen_at) = self.unknown_kids.get(&remembered)
            && now < seen_at + self.settings.cooldown
        {
            return Err(InvalidToken::UnknownKey.into());
        }
        let set = self.refetch_for_unknown_kid(index, &set).await;
        match set.find(Some(kid), alg) {
            Some(key) => Ok(key.clone()),
            None => {
                self.unknown_kids.insert(remembered, self.clock.now());
                Err(InvalidToken::UnknownKey.into())
            }
        }
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
        match self.fetch_into(index, &mut state).await {
            Some(set) => Ok(set),
            None => Err(AuthError::KeysUnavailable {
                retry_after: self.settings.retry_after,
            }),
        }
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
        let cooled_down = state
            .last_attempt
            .is_none_or(|at| now >= at + self.settings.cooldown);
        let backed_off = state
            .last_failure
            .is_none_or(|at| now >= at + self.settings.retry_after);
        if !(cooled_down && backed_off) {
            return current;
        }
        tracing::debug!(target: TARGET, url = %source.url, "unknown kid, refetching JWKS");
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
                    tracing::debug!(target: TARGET, url = %source.url, "refreshing JWKS");
                    cache.fetch_into(index, &mut state).await;
                }
            }
            source.refreshing.store(false, Ordering::Release);
        });
    }

    /// Fetches source `index` and, on success, caches the new key set.
    /// The caller holds the source's gate.
    async fn fetch_into(&self, index: usize, state: &mut FetchState) -> Option<Arc<KeySet>> {
        let source = &self.sources[index];
        state.last_attempt = Some(self.clock.now());
        match self.fetch(&source.url).await {
            Ok(keys) => {
                state.last_failure = None;
                let set = Arc::new(KeySet {
                    keys,
                    fetched_at: self.clock.now(),
                    generation: self.generations.fetch_add(1, Ordering::Relaxed) + 1,
                });
                self.sets.insert(index, set.clone());
                Some(set)
            }
            Err(error) => {
                state.last_failure = Some(self.clock.now());
                let stale = self.sets.contains_key(&index);
                tracing::warn!(
                    target: TARGET,
                    url = %source.url,
                    %error,
                    serving_stale_keys = stale,
                    "JWKS fetch failed"
                );
                None
            }
        }
    }

    async fn fetch(&self, url: &Url) -> Result<Vec<Arc<VerifyingKey>>, FetchError> {
        let timeout = self.settings.timeout;
        let body = tokio::time::timeout(timeout, self.fetch_body(url))
            .await
            .map_err(|_| FetchError::TimedOut(timeout))??;
        let (keys, skipped) = parse_jwks(&body, &self.algorithms)?;
        tracing::info!(
            target: TARGET,
            url = %url,
            keys = keys.len(),
            skipped,
            "JWKS fetched"
        );
        Ok(keys)
    }

    async fn fetch_body(&self, url: &Url) -> Result<Vec<u8>, FetchError> {
        let cap = self.settings.max_size;
        let mut response = self
            .client
            .get(url.clone())
            .header(
                http::header::ACCEPT,
                "application/jwk-set+json, application/json",
            )
            .send()
            .await
            .map_err(FetchError::Transport)?;
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
        while let Some(chunk) = response.chunk().await.map_err(FetchError::Transport)? {
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
        let Some(key) = entry.as_object().and_then(|jwk| parse_jwk(jwk, algorithms)) else {
            skipped += 1;
            continue;
        };
        if let Some(kid) = &key.kid
            && let Some(existing) = keys.iter().find(|k| k.kid.as_ref() == Some(kid))
        {
            if !existing.same_material(&key) && !ambiguous.contains(kid) {
                ambiguous.push(kid.clone());
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
            let drop = key.kid.as_ref().is_some_and(|kid| ambiguous.contains(kid));
            skipped += usize::from(drop);
            !drop
        });
    }
    if keys.is_empty() {
        return Err(FetchError::NoUsableKey);
    }
    Ok((keys.into_iter().map(Arc::new).collect(), skipped))
}

const PRIVATE_MEMBERS: [&str; 8] = ["d", "p", "q", "dp", "dq", "qi", "oth", "k"];

fn parse_jwk(jwk: &Map<String, Value>, algorithms: &[Algorithm]) -> Option<VerifyingKey> {
    if PRIVATE_MEMBERS.iter().any(|name| jwk.contains_key(*name)) {
        tracing::warn!(target: TARGET, "JWKS key with private members skipped");
        return None;
    }
    match jwk.get("use") {
        None => {}
        Some(Value::String(usage)) if usage == "sig" => {}
        Some(_) => return None,
    }
    match jwk.get("key_ops") {
        None => {}
        Some(Value::Array(ops)) if ops.iter().any(|op| op == "verify") => {}
        Some(_) => return None,
    }
    let alg = match jwk.get("alg") {
        None => None,
        Some(Value::String(name)) => {
            let alg = name.parse::<Algorithm>().ok()?;
            algorithms.contains(&alg).then_some(alg)?;
            Some(alg)
        }
        Some(_) => return None,
    };
    let kid = match jwk.get("kid") {
        None => None,
        Some(Value::String(kid)) => Some(kid.clone()),
        Some(_) => return None,
    };
    let (kind, key, material) = match jwk.get("kty")?.as_str()? {
        "RSA" => {
            let n = strip_leading_zeros(b64_member(jwk, "n")?);
            let e = strip_leading_zeros(b64_member(jwk, "e")?);
            let bits = n.len() * 8 - n.first()?.leading_zeros() as usize;
            let e_ok = !e.is_empty() && e.len() <= 4 && e.last()? & 1 == 1 && e != [1];
            if !(2048..=8192).contains(&bits) || !e_ok {
                tracing::warn!(
                    target: TARGET,
                    bits,
                    "JWKS RSA key outside 2048-8192 bits or with a bad exponent skipped"
                );
                return None;
            }
            let key = DecodingKey::from_rsa_raw_components(&n, &e);
            (KeyKind::Rsa, key, [n, e].concat())
        }
        "EC" => {
            let (curve_alg, size) = match jwk.get("crv")?.as_str()? {
                "P-256" => (Algorithm::ES256, 32),
                "P-384" => (Algorithm::ES384, 48),
                _ => return None,
            };
            let x = b64_member(jwk, "x")?;
            let y = b64_member(jwk, "y")?;
            if x.len() != size || y.len() != size {
                return None;
            }
            let key =
                DecodingKey::from_ec_components(jwk.get("x")?.as_str()?, jwk.get("y")?.as_str()?)
                    .ok()?;
            (KeyKind::Ec(curve_alg), key, [x, y].concat())
        }
        "OKP" => {
            if jwk.get("crv")?.as_str()? != "Ed25519" {
                return None;
            }
            let x = b64_member(jwk, "x")?;
            if x.len() != 32 {
                return None;
            }
            let key = DecodingKey::from_ed_components(jwk.get("x")?.as_str()?).ok()?;
            (KeyKind::Ed25519, key, x)
        }
        _ => return None,
    };
    let key = VerifyingKey {
        kid,
        alg,
        kind,
        key,
        material,
    };
    algorithms.iter().any(|alg| key.fits(*alg)).then_some(key)
}

fn b64_member(jwk: &Map<String, Value>, name: &str) -> Option<Vec<u8>> {
    URL_SAFE_NO_PAD.decode(jwk.get(name)?.as_str()?).ok()
}

fn strip_leading_zeros(bytes: Vec<u8>) -> Vec<u8> {
    let zeros = bytes.iter().take_while(|b| **b == 0).count();
    if zeros == 0 {
        bytes
    } else {
        bytes[zeros..].to_vec()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
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
        assert_eq!(keys[0].kid.as_deref(), Some("good"));
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
            fetched_at: Duration::ZERO,
            generation: 1,
        };
        assert!(set.find(None, Algorithm::RS256).is_some());
        let mut b = rsa_jwk(3072);
        b["kid"] = json!("k2");
        let set = KeySet {
            keys: parse(vec![a, b]).unwrap().0,
            fetched_at: Duration::ZERO,
            generation: 1,
        };
        assert!(set.find(None, Algorithm::RS256).is_none());
        assert!(set.find(Some("k2"), Algorithm::RS256).is_some());
        assert!(set.find(Some("k2"), Algorithm::ES256).is_none());
    }
}

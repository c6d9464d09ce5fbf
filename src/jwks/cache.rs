//! The cache policy: one snapshot per key source, single flight, cooldown,
//! stale-if-error.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use arc_swap::ArcSwap;
use jsonwebtoken::Algorithm;
use reqwest::Url;
use tokio::sync::Mutex;

use super::document::{DocumentError, parse_discovery, parse_jwks};
use super::fetch::{FetchError, Fetcher};
use super::{JwksSettings, KeysError, Location, SourceConfig, SourceId, TARGET};
use crate::clock::SharedClock;
use crate::error::{AuthError, InvalidToken};
use crate::keys::VerifyingKey;
use crate::metrics::{self, FetchKind, FetchResult, FetchTimer, SourceLabel};

/// Everything known about one key source at one moment. Never changed in
/// place: a fetch makes a new one and swaps it in.
#[derive(Debug)]
pub(crate) struct Snapshot {
    /// The usable keys of the last well-formed JWKS (possibly none).
    keys: Vec<Arc<VerifyingKey>>,
    /// The algorithms tokens verified with these keys may use.
    algorithms: Vec<Algorithm>,
    /// When the keys were fetched; `None`: never.
    fetched_at: Option<Duration>,
    /// Counts the key sets fetched for this source: one more for every
    /// well-formed JWKS.
    generation: u64,
    /// When the last fetch started, successful or not.
    last_attempt: Option<Duration>,
    /// When the last fetch failed, if it did.
    last_failure: Option<Duration>,
}

impl Snapshot {
    fn empty() -> Self {
        Self {
            keys: Vec::new(),
            algorithms: Vec::new(),
            fetched_at: None,
            generation: 0,
            last_attempt: None,
            last_failure: None,
        }
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

    /// Whether `key` (that very object) is one of these keys.
    fn holds(&self, key: &Arc<VerifyingKey>) -> bool {
        self.keys.iter().any(|own| Arc::ptr_eq(own, key))
    }
}
struct Source {
    config: SourceConfig,
    current: ArcSwap<Snapshot>,
    /// Held while fetching: concurrent fetchers queue here and find the new
    /// snapshot when it is their turn (single flight). A background refresh
    /// starts only if it can take the gate at once.
    gate: Arc<Mutex<()>>,
    /// This source in metrics.
    label: SourceLabel,
}

/// The key sets of every configured source. See the [module docs](self).
pub(crate) struct JwksCache {
    sources: Vec<Source>,
    /// `kid`s found missing, with the generation of the key set they were
    /// missing from.
    unknown_kids: moka::sync::Cache<(SourceId, Box<str>), u64>,
    /// Configured algorithms; `None`: those the discovery document lists.
    algorithms: Option<Vec<Algorithm>>,
    fetcher: Fetcher,
    settings: JwksSettings,
    clock: SharedClock,
}

impl fmt::Debug for JwksCache {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("JwksCache")
            .field(
                "urls",
                &self
                    .sources
                    .iter()
                    .map(|s| s.config.location.url().as_str())
                    .collect::<Vec<_>>(),
            )
            .field("settings", &self.settings)
            .finish_non_exhaustive()
    }
}
impl JwksCache {
    pub(crate) fn new(
        sources: Vec<SourceConfig>,
        algorithms: Option<Vec<Algorithm>>,
        settings: JwksSettings,
        clock: SharedClock,
    ) -> Result<Self, reqwest::Error> {
        let fetcher = Fetcher::new(&settings)?;
        let sources = sources
            .into_iter()
            .map(|config| Source {
                label: SourceLabel::new(config.location.url().as_str()),
                config,
                current: ArcSwap::from_pointee(Snapshot::empty()),
                gate: Arc::new(Mutex::new(())),
            })
            .collect();
        Ok(Self {
            unknown_kids: moka::sync::Cache::builder()
                .max_capacity(settings.max_unknown_kids)
                .time_to_live(settings.cooldown.max(Duration::from_millis(1)))
                .build(),
            sources,
            algorithms,
            fetcher,
            settings,
            clock,
        })
    }

    fn source(&self, id: SourceId) -> &Source {
        &self.sources[id.0]
    }

    /// The key that verifies a token with this `kid` and `alg` from source
    /// `id`, fetching only when the cache rules allow it.
    pub(crate) async fn key(
        self: &Arc<Self>,
        id: SourceId,
        kid: Option<&str>,
        alg: Algorithm,
    ) -> Result<Arc<VerifyingKey>, AuthError> {
        let now = self.clock.now();
        let current = self.source(id).current.load_full();
        let mut stale = false;
        let snapshot = match current.fetched_at {
            Some(fetched) if self.usable(fetched, now) => {
                if now >= fetched + self.settings.ttl {
                    stale = current.last_failure.is_some();
                    self.refresh_in_background(id);
                }
                current
            }
            _ => self.load(id).await?,
        };
        if !snapshot.algorithms.contains(&alg) {
            return Err(InvalidToken::UnsupportedAlgorithm.into());
        }
        if let Some(key) = snapshot.find(kid, alg) {
            if stale {
                metrics::stale_keys_served();
            }
            return Ok(key.clone());
        }
        // A fresh fetch only helps a token that names a key we do not know.
        let Some(kid) = kid.filter(|kid| !snapshot.keys.iter().any(|k| k.kid() == Some(*kid)))
        else {
            return Err(InvalidToken::UnknownKey.into());
        };
        // A kid already found missing from this very key set, while no
        // refetch is allowed yet: refuse without queueing for the gate.
        let remembered = (id, Box::<str>::from(kid));
        if self.unknown_kids.get(&remembered) == Some(snapshot.generation)
            && self.cooling_down(&snapshot, now)
        {
            return Err(InvalidToken::UnknownKey.into());
        }
        let snapshot = self.refetch_for_unknown_kid(id, &snapshot).await;
        match snapshot.find(Some(kid), alg) {
            Some(key) => Ok(key.clone()),
            None => {
                self.unknown_kids.insert(remembered, snapshot.generation);
                Err(InvalidToken::UnknownKey.into())
            }
        }
    }

    /// Fetches every source that has no usable key set now, and says why
    /// the first that fails failed.
    pub(crate) async fn preload(&self) -> Result<(), KeysError> {
        for (index, source) in self.sources.iter().enumerate() {
            let _gate = source.gate.lock().await;
            let current = source.current.load_full();
            if current
                .fetched_at
                .is_some_and(|fetched| self.usable(fetched, self.clock.now()))
            {
                continue;
            }
            self.fetch_into(SourceId(index), &current)
                .await
                .map_err(|error| KeysError {
                    url: source.config.location.url().to_string(),
                    setting: source.config.setting,
                    reason: error.to_string(),
                })?;
        }
        Ok(())
    }

    /// For a verified-token cache hit: whether `key` is still in the current
    /// key set of source `id` and that set may still be trusted (not past
    /// the stale limit). Starts a background refresh when the keys are due
    /// one, so that a key the issuer dropped is noticed even while every
    /// token is a cache hit. Never waits.
    pub(crate) fn still_holds(self: &Arc<Self>, id: SourceId, key: &Arc<VerifyingKey>) -> bool {
        let now = self.clock.now();
        let snapshot = self.source(id).current.load();
        let Some(fetched) = snapshot.fetched_at else {
            return false;
        };
        let stale = now >= fetched + self.settings.ttl;
        if stale {
            self.refresh_in_background(id);
        }
        let holds = self.usable(fetched, now) && snapshot.holds(key);
        if holds && stale && snapshot.last_failure.is_some() {
            metrics::stale_keys_served();
        }
        holds
    }

    /// The generation of the key set cached for source `id`, if any.
    pub(crate) fn current_generation(&self, id: SourceId) -> Option<u64> {
        let snapshot = self.source(id).current.load();
        snapshot.fetched_at.map(|_| snapshot.generation)
    }

    /// Whether the last fetch of this snapshot's source was less than a
    /// cooldown ago.
    fn cooling_down(&self, snapshot: &Snapshot, now: Duration) -> bool {
        snapshot
            .last_attempt
            .is_some_and(|last| now < last + self.settings.cooldown)
    }

    /// Whether keys fetched at `fetched` may serve at `now` (within TTL plus
    /// the stale limit).
    fn usable(&self, fetched: Duration, now: Duration) -> bool {
        now < fetched + self.settings.ttl + self.settings.max_stale
    }

    /// Whether the issuer failed less than `retry_after` ago.
    fn backing_off(&self, snapshot: &Snapshot, now: Duration) -> bool {
        snapshot
            .last_failure
            .is_some_and(|at| now < at + self.settings.retry_after)
    }

    /// Cold start (or keys past the stale limit): wait for a fetch, shared
    /// with every concurrent caller.
    async fn load(&self, id: SourceId) -> Result<Arc<Snapshot>, AuthError> {
        let source = self.source(id);
        let _gate = source.gate.lock().await;
        let now = self.clock.now();
        let current = source.current.load_full();
        if current
            .fetched_at
            .is_some_and(|fetched| self.usable(fetched, now))
        {
            return Ok(current);
        }
        if let Some(failed_at) = current.last_failure {
            let retry_at = failed_at + self.settings.retry_after;
            if now < retry_at {
                return Err(AuthError::KeysUnavailable {
                    retry_after: retry_at - now,
                });
            }
        }
        self.fetch_into(id, &current)
            .await
            .map_err(|_| AuthError::KeysUnavailable {
                retry_after: self.settings.retry_after,
            })
    }

    async fn refetch_for_unknown_kid(&self, id: SourceId, seen: &Arc<Snapshot>) -> Arc<Snapshot> {
        let source = self.source(id);
        let _gate = source.gate.lock().await;
        let current = source.current.load_full();
        if !Arc::ptr_eq(&current, seen) {
            // Someone fetched while we queued: use theirs.
            return current;
        }
        let now = self.clock.now();
        if self.cooling_down(&current, now) || self.backing_off(&current, now) {
            return current;
        }
        tracing::debug!(target: TARGET, url = %source.config.location.url(), "unknown kid, refetching JWKS");
        match self.fetch_into(id, &current).await {
            Ok(fetched) => fetched,
            Err(_) => source.current.load_full(),
        }
    }

    fn refresh_in_background(self: &Arc<Self>, id: SourceId) {
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            return;
        };
        // A fetch in flight (background or not) will bring new keys anyway.
        let Ok(gate) = self.source(id).gate.clone().try_lock_owned() else {
            return;
        };
        let cache = Arc::clone(self);
        runtime.spawn(async move {
            let _gate = gate;
            let current = cache.source(id).current.load_full();
            let now = cache.clock.now();
            let due = current
                .fetched_at
                .is_none_or(|fetched| now >= fetched + cache.settings.ttl);
            if due && !cache.backing_off(&current, now) {
                tracing::debug!(target: TARGET, url = %cache.source(id).config.location.url(), "refreshing JWKS");
                let _ = cache.fetch_into(id, &current).await;
            }
        });
    }

    /// Fetches source `id` and swaps in the new snapshot: new keys on
    /// success, the old keys with the failure noted otherwise. The caller
    /// holds the source's gate; `previous` is the snapshot it read under it.
    async fn fetch_into(
        &self,
        id: SourceId,
        previous: &Snapshot,
    ) -> Result<Arc<Snapshot>, FetchError> {
        let source = self.source(id);
        let started = self.clock.now();
        let outcome = self.fetch(&source.config.location).await;
        let now = self.clock.now();
        match outcome {
            Ok((keys, algorithms)) => {
                // An unchanged key stays the very same object, so verdicts
                // it gave stay valid; any other key is new.
                let keys = keys
                    .into_iter()
                    .map(|key| {
                        previous
                            .keys
                            .iter()
                            .find(|old| old.same_key(&key))
                            .cloned()
                            .unwrap_or(key)
                    })
                    .collect();
                let snapshot = Arc::new(Snapshot {
                    keys,
                    algorithms,
                    fetched_at: Some(now),
                    generation: previous.generation + 1,
                    last_attempt: Some(started),
                    last_failure: None,
                });
                source.current.store(snapshot.clone());
                metrics::keys(&source.label, snapshot.keys.len());
                Ok(snapshot)
            }
            Err(error) => {
                let stale = previous.fetched_at.is_some();
                tracing::warn!(
                    target: TARGET,
                    url = %source.config.location.url(),
                    %error,
                    serving_stale_keys = stale,
                    "JWKS fetch failed"
                );
                source.current.store(Arc::new(Snapshot {
                    keys: previous.keys.clone(),
                    algorithms: previous.algorithms.clone(),
                    fetched_at: previous.fetched_at,
                    generation: previous.generation,
                    last_attempt: Some(started),
                    last_failure: Some(now),
                }));
                Err(error)
            }
        }
    }

    async fn fetch(
        &self,
        location: &Location,
    ) -> Result<(Vec<Arc<VerifyingKey>>, Vec<Algorithm>), FetchError> {
        let timeout = self.settings.timeout;
        let mut timer = FetchTimer::default();
        match tokio::time::timeout(timeout, self.fetch_keys(location, &mut timer)).await {
            Ok(outcome) => outcome,
            Err(_) => {
                timer.finish(FetchResult::Timeout);
                Err(FetchError::TimedOut(timeout))
            }
        }
    }

    async fn fetch_keys(
        &self,
        location: &Location,
        timer: &mut FetchTimer,
    ) -> Result<(Vec<Arc<VerifyingKey>>, Vec<Algorithm>), FetchError> {
        let (jwks_url, algorithms) = match location {
            Location::Jwks(url) => (
                url.clone(),
                self.algorithms
                    .clone()
                    .unwrap_or_else(|| vec![Algorithm::RS256]),
            ),
            Location::Discovery { issuer, url } => {
                let discovered = self
                    .fetch_document(url, FetchKind::Discovery, timer, |document| {
                        parse_discovery(document, issuer, self.algorithms.as_deref())
                    })
                    .await?;
                tracing::debug!(target: TARGET, jwks_uri = %discovered.0, "discovery document fetched");
                discovered
            }
        };
        let (keys, skipped) = self
            .fetch_document(&jwks_url, FetchKind::Jwks, timer, |body| {
                parse_jwks(body, &algorithms)
            })
            .await?;
        tracing::info!(
            target: TARGET,
            url = %jwks_url,
            keys = keys.len(),
            skipped,
            "JWKS fetched"
        );
        Ok((keys, algorithms))
    }

    /// Fetches the document at `url` and reads it with `parse`, timed by
    /// `timer` as a fetch of `kind`.
    async fn fetch_document<T>(
        &self,
        url: &Url,
        kind: FetchKind,
        timer: &mut FetchTimer,
        parse: impl FnOnce(&[u8]) -> Result<T, DocumentError>,
    ) -> Result<T, FetchError> {
        timer.start(kind);
        let outcome = match self.fetcher.body(url).await {
            Ok(body) => parse(&body).map_err(FetchError::from),
            Err(error) => Err(error),
        };
        timer.finish(match &outcome {
            Ok(_) => FetchResult::Ok,
            // A redirect the application's client followed is, to the
            // issuer's operator, an answer other than 200.
            Err(FetchError::Status(_) | FetchError::Redirected) => FetchResult::Status,
            Err(FetchError::TooLarge(_)) => FetchResult::TooLarge,
            Err(FetchError::TimedOut(_)) => FetchResult::Timeout,
            Err(FetchError::Transport(_)) => FetchResult::Transport,
            Err(FetchError::Document(_)) => FetchResult::Malformed,
        });
        outcome
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use base64::Engine;
    use base64::engine::general_purpose::URL_SAFE_NO_PAD;
    use reqwest::Url;
    use serde_json::{Value, json};

    fn rsa_jwk(bits: usize) -> Value {
        let mut n = vec![0xC5u8; bits / 8];
        n[bits / 8 - 1] |= 1;
        json!({"kty": "RSA", "kid": "k1", "n": URL_SAFE_NO_PAD.encode(&n), "e": "AQAB"})
    }

    fn parse(keys: Vec<Value>) -> Vec<Arc<VerifyingKey>> {
        let doc = serde_json::to_vec(&json!({ "keys": keys })).unwrap();
        parse_jwks(&doc, &[Algorithm::RS256]).unwrap().0
    }

    fn snapshot(keys: Vec<Arc<VerifyingKey>>) -> Snapshot {
        Snapshot {
            keys,
            algorithms: vec![Algorithm::RS256],
            fetched_at: Some(Duration::ZERO),
            ..Snapshot::empty()
        }
    }

    #[test]
    fn without_kid_only_a_single_fitting_key_is_chosen() {
        let mut a = rsa_jwk(2048);
        a.as_object_mut().unwrap().remove("kid");
        let set = snapshot(parse(vec![a.clone()]));
        assert!(set.find(None, Algorithm::RS256).is_some());
        let mut b = rsa_jwk(3072);
        b["kid"] = json!("k2");
        let set = snapshot(parse(vec![a, b]));
        assert!(set.find(None, Algorithm::RS256).is_none());
        assert!(set.find(Some("k2"), Algorithm::RS256).is_some());
        assert!(set.find(Some("k2"), Algorithm::ES256).is_none());
    }

    #[tokio::test]
    async fn a_transport_error_names_the_url_once() {
        // A port nobody listens on: the connection is refused.
        let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}/jwks", closed.local_addr().unwrap());
        drop(closed);
        let cache = JwksCache::new(
            vec![SourceConfig {
                location: Location::Jwks(Url::parse(&url).unwrap()),
                setting: "MEINGPT_JWKS_URL / `jwks_url`",
            }],
            None,
            JwksSettings::default(),
            SharedClock(Arc::new(crate::clock::SystemClock)),
        )
        .unwrap();
        let text = cache.preload().await.unwrap_err().to_string();
        assert_eq!(text.matches(url.as_str()).count(), 1, "{text}");
        assert!(
            text.starts_with(&format!(
                "cannot load signing keys from {url} (set by MEINGPT_JWKS_URL / `jwks_url`): "
            )),
            "{text}"
        );
    }

    #[test]
    fn keys_error_names_the_url_once_and_the_setting() {
        let error = KeysError {
            url: "https://app.meingpt.com/api/custom-apps/v1/jwks/org".to_owned(),
            setting: "MEINGPT_ORG_ID / `organization`",
            reason: "the issuer answered HTTP 500".to_owned(),
        };
        assert_eq!(
            error.to_string(),
            "cannot load signing keys from https://app.meingpt.com/api/custom-apps/v1/jwks/org \
             (set by MEINGPT_ORG_ID / `organization`): the issuer answered HTTP 500"
        );
    }
}

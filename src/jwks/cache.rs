//! The cache policy: one snapshot per key source, single flight, cooldown,
//! stale-if-error.
//!
//! Looking a key up never waits: it answers with the key, a refusal, or a
//! [`KeyWait`] for the one fetch of that source in flight (a Tokio task),
//! after which the caller looks again.

use std::fmt;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use arc_swap::ArcSwap;
use jsonwebtoken::Algorithm;

use super::fetch::Fetcher;
use super::{JwksSettings, KeysError, SourceConfig, SourceId, TARGET};
use crate::clock::SharedClock;
use crate::error::{AuthError, InvalidToken};
use crate::keys::VerifyingKey;
use crate::metrics::{self, SourceLabel};

mod flight;

use flight::Fetch;
pub(crate) use flight::{Failure, KeyWait};

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
    /// The fetch in flight, if any: everyone who needs this source's keys
    /// meanwhile waits for it (single flight). Taken out by the fetch when
    /// it has swapped in its snapshot.
    fetching: Mutex<Option<Fetch>>,
    /// This source in metrics.
    label: SourceLabel,
}

/// The answer of a key lookup that does not wait.
#[derive(Debug)]
pub(crate) enum KeyLookup {
    Found(Arc<VerifyingKey>),
    Refused(AuthError),
    /// The keys have to be fetched first: wait, then look again with the
    /// same [`Waited`].
    Wait(KeyWait),
}

/// The sources one verification has already waited for, so that looking
/// again never fetches a second time for the same reason.
#[derive(Debug, Default)]
pub(crate) struct Waited {
    /// Waited for a first (or past the stale limit) key set.
    loaded: Vec<SourceId>,
    /// Waited for a refetch because of an unknown `kid`.
    refetched: Vec<SourceId>,
}

impl Waited {
    /// Whether nothing has been waited for yet: the first look.
    pub(crate) fn is_first_look(&self) -> bool {
        self.loaded.is_empty() && self.refetched.is_empty()
    }
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
                fetching: Mutex::new(None),
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
    /// `id`, without waiting: when the cache rules call for a fetch, it
    /// starts (or joins) one and says to wait for it. `waited` keeps what
    /// this verification waited for already, so each reason to fetch
    /// counts once.
    pub(crate) fn key(
        self: &Arc<Self>,
        id: SourceId,
        kid: Option<&str>,
        alg: Algorithm,
        waited: &mut Waited,
    ) -> KeyLookup {
        let now = self.clock.now();
        let snapshot = self.source(id).current.load_full();
        let mut stale = false;
        match snapshot.fetched_at {
            Some(fetched) if self.usable(fetched, now) => {
                if now >= fetched + self.settings.ttl {
                    stale = snapshot.last_failure.is_some();
                    self.refresh_in_background(id);
                }
            }
            // Cold start, or keys past the stale limit: wait for a fetch,
            // shared with every concurrent caller.
            _ => {
                if waited.loaded.contains(&id) {
                    return KeyLookup::Refused(AuthError::KeysUnavailable {
                        retry_after: self.settings.retry_after,
                    });
                }
                if let Some(failed_at) = snapshot.last_failure {
                    let retry_at = failed_at + self.settings.retry_after;
                    if now < retry_at {
                        return KeyLookup::Refused(AuthError::KeysUnavailable {
                            retry_after: retry_at - now,
                        });
                    }
                }
                waited.loaded.push(id);
                return match self.fetch_after(id, &snapshot, Failure::Logged, |_| true) {
                    Some(wait) => KeyLookup::Wait(wait),
                    None => KeyLookup::Refused(AuthError::KeysUnavailable {
                        retry_after: self.settings.retry_after,
                    }),
                };
            }
        }
        if !snapshot.algorithms.contains(&alg) {
            return KeyLookup::Refused(InvalidToken::UnsupportedAlgorithm.into());
        }
        if let Some(key) = snapshot.find(kid, alg) {
            if stale {
                metrics::stale_keys_served();
            }
            return KeyLookup::Found(key.clone());
        }
        // A fresh fetch only helps a token that names a key we do not know.
        let Some(kid) = kid.filter(|kid| !snapshot.keys.iter().any(|k| k.kid() == Some(*kid)))
        else {
            return KeyLookup::Refused(InvalidToken::UnknownKey.into());
        };
        // A kid already found missing from this very key set, while no
        // refetch is allowed yet: refuse without looking for a fetch.
        let remembered = (id, Box::<str>::from(kid));
        if self.unknown_kids.get(&remembered) == Some(snapshot.generation)
            && self.cooling_down(&snapshot, now)
        {
            return KeyLookup::Refused(InvalidToken::UnknownKey.into());
        }
        if !waited.refetched.contains(&id) {
            // A fetch in flight is joined; a new one only outside the
            // cooldown and the back-off after a failure.
            let wait = self.fetch_after(id, &snapshot, Failure::Logged, |current| {
                let start = !self.cooling_down(current, now) && !self.backing_off(current, now);
                if start {
                    tracing::debug!(target: TARGET, url = %self.source(id).config.location.url(), "unknown kid, refetching JWKS");
                }
                start
            });
            if let Some(wait) = wait {
                waited.refetched.push(id);
                return KeyLookup::Wait(wait);
            }
        }
        self.unknown_kids.insert(remembered, snapshot.generation);
        KeyLookup::Refused(InvalidToken::UnknownKey.into())
    }

    /// Fetches every source that has no usable key set now, and says why
    /// the first that fails failed; that failure is told as `failure`
    /// says (returned only: the caller prints it once).
    pub(crate) async fn preload(self: &Arc<Self>, failure: Failure) -> Result<(), KeysError> {
        for (index, source) in self.sources.iter().enumerate() {
            let id = SourceId(index);
            loop {
                let current = source.current.load_full();
                if current
                    .fetched_at
                    .is_some_and(|fetched| self.usable(fetched, self.clock.now()))
                {
                    break;
                }
                let Some(wait) = self.fetch_after(id, &current, failure, |_| true) else {
                    break;
                };
                if let Err(error) = wait.await {
                    return Err(KeysError {
                        url: source.config.location.url().to_string(),
                        setting: source.config.setting,
                        reason: source.config.explain(&error),
                    });
                }
            }
        }
        Ok(())
    }

    /// For a verified-token cache hit: whether, at `now`, `key` is still in the current
    /// key set of source `id` and that set may still be trusted (not past
    /// the stale limit). Starts a background refresh when the keys are due
    /// one, so that a key the issuer dropped is noticed even while every
    /// token is a cache hit. Never waits.
    pub(crate) fn still_holds(
        self: &Arc<Self>,
        id: SourceId,
        key: &Arc<VerifyingKey>,
        now: Duration,
    ) -> bool {
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
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::jwks::Location;
    use crate::jwks::document::parse_jwks;
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
        let cache = Arc::new(
            JwksCache::new(
                vec![SourceConfig {
                    location: Location::Jwks(Url::parse(&url).unwrap()),
                    setting: "MEINGPT_JWKS_URL / `jwks_url`",
                }],
                None,
                JwksSettings::default(),
                SharedClock(Arc::new(crate::clock::SystemClock)),
            )
            .unwrap(),
        );
        let text = cache
            .preload(Failure::Returned)
            .await
            .unwrap_err()
            .to_string();
        assert_eq!(text.matches(url.as_str()).count(), 1, "{text}");
        assert!(
            text.starts_with(&format!(
                "cannot load signing keys from {url} (set by MEINGPT_JWKS_URL / `jwks_url`): "
            )),
            "{text}"
        );
    }

    #[test]
    fn a_404_says_what_may_be_wrong_for_each_kind_of_source() {
        use crate::jwks::fetch::FetchError;
        let url = Url::parse("https://app.meingpt.com/api/custom-apps/v1/jwks/org").unwrap();
        let explain = |location: Location, setting: &'static str, error: FetchError| {
            SourceConfig { location, setting }.explain(&error)
        };
        assert_eq!(
            explain(
                Location::Jwks(url.clone()),
                "MEINGPT_ORG_ID / `organization`",
                FetchError::Status(404)
            ),
            "the issuer answered HTTP 404: no key set here; the organization id or the issuer \
             (MEINGPT_ISSUER / `issuer`) may be wrong"
        );
        assert_eq!(
            explain(
                Location::Jwks(url.clone()),
                "MEINGPT_JWKS_URL / `jwks_url`",
                FetchError::Status(404)
            ),
            "the issuer answered HTTP 404: no key set here; the JWKS URL may be wrong"
        );
        let discovery = Location::Discovery {
            issuer: "https://id.example.com".to_owned(),
            url: Url::parse("https://id.example.com/.well-known/openid-configuration").unwrap(),
        };
        assert_eq!(
            explain(
                discovery,
                "JWT_ISS / `MeinGptAuth::oidc`",
                FetchError::Status(404)
            ),
            "the issuer answered HTTP 404: the issuer may be wrong (it must be exactly the \
             `iss` its tokens carry)"
        );
        assert_eq!(
            explain(
                Location::Jwks(url),
                "MEINGPT_ORG_ID / `organization`",
                FetchError::Status(500)
            ),
            "the issuer answered HTTP 500"
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

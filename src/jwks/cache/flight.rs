//! The one fetch in flight per key source: a Tokio task that fetches,
//! swaps in the new snapshot and leaves; everyone who needs the keys
//! meanwhile waits for that task through a [`KeyWait`].

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, PoisonError};
use std::task::{Context, Poll};

use futures_util::FutureExt;
use futures_util::future::{Map, Shared};
use jsonwebtoken::Algorithm;
use reqwest::Url;
use tokio::task::{JoinError, JoinHandle};

use super::{JwksCache, Snapshot};
use crate::jwks::document::{DocumentError, parse_discovery, parse_jwks};
use crate::jwks::fetch::FetchError;
use crate::jwks::{Location, SourceId, TARGET};
use crate::keys::VerifyingKey;
use crate::metrics::{self, FetchKind, FetchResult, FetchTimer};

/// What a fetch ended with; the error is shared by everyone who waited.
pub(crate) type FetchOutcome = Result<(), Arc<FetchError>>;

/// Who tells of a fetch that fails.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Failure {
    /// The log, at WARN: nobody else reports it (a request answered
    /// `503`, a refresh in the background).
    Logged,
    /// The caller, who returns it (`preload`, whose error a service prints
    /// at start-up): logged at DEBUG only, so that it is printed once.
    Returned,
}

/// One fetch, running as its own task; clones wait for the same fetch.
pub(super) type Fetch =
    Shared<Map<JoinHandle<FetchOutcome>, fn(Result<FetchOutcome, JoinError>) -> FetchOutcome>>;

/// A wait for the keys of one source: ends when the fetch in flight has
/// swapped in its snapshot (at once if another fetch already did). The
/// fetch runs as its own task, so a waiter that goes away cancels nothing.
#[must_use = "look the key up again when the wait is over"]
pub(crate) struct KeyWait(pub(super) Option<Fetch>);

impl fmt::Debug for KeyWait {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("KeyWait").finish_non_exhaustive()
    }
}

impl Future for KeyWait {
    type Output = FetchOutcome;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<FetchOutcome> {
        match &mut self.0 {
            Some(fetch) => Pin::new(fetch).poll(cx),
            None => Poll::Ready(Ok(())),
        }
    }
}

impl JwksCache {
    /// A wait for the fetch of source `id` that follows `seen`: the one in
    /// flight if any; none needed if another fetch has swapped in a newer
    /// snapshot since `seen` was read; else a new fetch if `may_start`
    /// allows it for the current snapshot (`None` if not), whose failure
    /// is told as `failure` says. Outside a Tokio runtime no fetch can
    /// run: `None`.
    pub(super) fn fetch_after(
        self: &Arc<Self>,
        id: SourceId,
        seen: &Arc<Snapshot>,
        failure: Failure,
        may_start: impl FnOnce(&Snapshot) -> bool,
    ) -> Option<KeyWait> {
        let source = self.source(id);
        let mut fetching = source
            .fetching
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if let Some(fetch) = &*fetching {
            // A fetch that is over yet still here had its task cancelled
            // (its runtime shut down, perhaps before it ever ran): as if
            // none were in flight.
            if fetch.clone().now_or_never().is_none() {
                return Some(KeyWait(Some(fetch.clone())));
            }
        }
        // A fetch swaps in its snapshot before it leaves `fetching`, so a
        // fetch that ended since `seen` shows here.
        let current = source.current.load_full();
        if !Arc::ptr_eq(&current, seen) {
            return Some(KeyWait(None));
        }
        if !may_start(&current) {
            return None;
        }
        let runtime = tokio::runtime::Handle::try_current().ok()?;
        let cache = Arc::clone(self);
        let task = runtime.spawn(async move {
            let outcome = cache.fetch_into(id, &current, failure).await;
            // After the swap: from now on a lookup sees the new snapshot,
            // and starts a new fetch when it needs one.
            *cache
                .source(id)
                .fetching
                .lock()
                .unwrap_or_else(PoisonError::into_inner) = None;
            outcome.map(drop).map_err(Arc::new)
        });
        let joined: fn(Result<FetchOutcome, JoinError>) -> FetchOutcome =
            |joined| joined.unwrap_or_else(|_| Err(Arc::new(FetchError::Cancelled)));
        let fetch = task.map(joined).shared();
        *fetching = Some(fetch.clone());
        Some(KeyWait(Some(fetch)))
    }

    /// Starts a fetch of source `id` that nobody waits for, when its keys
    /// are due one, no fetch is in flight and the issuer is not backing
    /// off.
    pub(super) fn refresh_in_background(self: &Arc<Self>, id: SourceId) {
        let current = self.source(id).current.load_full();
        let wait = self.fetch_after(id, &current, Failure::Logged, |current| {
            let now = self.clock.now();
            let due = current
                .fetched_at
                .is_none_or(|fetched| now >= fetched + self.settings.ttl);
            let start = due && !self.backing_off(current, now);
            if start {
                tracing::debug!(target: TARGET, url = %self.source(id).config.location.url(), "refreshing JWKS");
            }
            start
        });
        drop(wait);
    }

    /// Fetches source `id` and swaps in the new snapshot: new keys on
    /// success, the old keys with the failure noted (and told as `failure`
    /// says) otherwise. Runs as the source's one fetch in flight;
    /// `previous` is the snapshot it follows.
    async fn fetch_into(
        &self,
        id: SourceId,
        previous: &Snapshot,
        failure: Failure,
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
                let url = source.config.location.url();
                let explained = source.config.explain(&error);
                match failure {
                    Failure::Logged => tracing::warn!(
                        target: TARGET,
                        %url,
                        error = %explained,
                        serving_stale_keys = stale,
                        "JWKS fetch failed"
                    ),
                    Failure::Returned => tracing::debug!(
                        target: TARGET,
                        %url,
                        error = %explained,
                        serving_stale_keys = stale,
                        "JWKS fetch failed; the caller reports it"
                    ),
                }
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
            Err(FetchError::Transport(_) | FetchError::Cancelled) => FetchResult::Transport,
            Err(FetchError::Document(_)) => FetchResult::Malformed,
        });
        outcome
    }
}

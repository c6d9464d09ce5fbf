//! The JWKS cache seen from outside: what users get (status, challenge,
//! `Retry-After`) and what the issuer gets (`fetch_count()`), through a real
//! server on loopback.
//!
//! Time moves with a `MockClock`; the only real waits are the fetch timeouts
//! under test (a few hundred milliseconds) and bounded polls for background
//! refreshes.
//!
//! Each way an issuer can fail, with unknown `kid`s, recovery and unusable
//! keys, is in `tests/it/issuer_faults.rs`.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use crate::common::answers::UNKNOWN_KEY;
use crate::common::{Seen, app, random_kid, serve};
use axum::Router;
use axum::http::{StatusCode, header};
use axum::routing::get;
use meingpt_auth::testing::{Fault, MockClock, MockIssuer, TokenBuilder, key_generation};
use meingpt_auth::{Clock, MeinGptAuth, MeinGptAuthBuilder};
use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::Semaphore;

const SECOND: Duration = Duration::from_secs(1);

/// A mock issuer, a mock clock, and the quickstart app behind the layer.
struct Harness {
    issuer: MockIssuer,
    clock: MockClock,
    auth: MeinGptAuth,
    me: String,
    client: reqwest::Client,
}

impl Harness {
    /// Starts an issuer and an app whose auth is configured by `configure`
    /// (the clock is always the harness's `MockClock`).
    async fn start(configure: impl FnOnce(MeinGptAuthBuilder) -> MeinGptAuthBuilder) -> Self {
        let issuer = MockIssuer::start().await;
        Self::with_issuer(issuer, configure).await
    }

    async fn with_issuer(
        issuer: MockIssuer,
        configure: impl FnOnce(MeinGptAuthBuilder) -> MeinGptAuthBuilder,
    ) -> Self {
        let clock = MockClock::new();
        let auth = configure(issuer.auth().clock(clock.clone()))
            .build()
            .unwrap();
        let base = serve(app(&auth)).await;
        Self {
            issuer,
            clock,
            auth,
            me: format!("{base}/me"),
            client: reqwest::Client::new(),
        }
    }

    /// A token from the issuer's current key, valid for an hour of the
    /// mock clock (which may run far ahead of the system clock).
    fn token(&self) -> TokenBuilder {
        token_at(&self.issuer, &self.clock)
    }

    fn valid(&self) -> String {
        self.token().sign()
    }

    async fn get(&self, token: &str) -> Seen {
        send(&self.client, &self.me, token).await
    }

    /// `GET /me` with a fresh valid token.
    async fn get_valid(&self) -> Seen {
        self.get(&self.valid()).await
    }

    /// Sends all tokens concurrently (at most 200 in flight); answers in order.
    async fn get_all(&self, tokens: Vec<String>) -> Vec<Seen> {
        let gate = Arc::new(Semaphore::new(200));
        let tasks: Vec<_> = tokens
            .into_iter()
            .map(|token| {
                let client = self.client.clone();
                let url = self.me.clone();
                let gate = gate.clone();
                tokio::spawn(async move {
                    let _permit = gate.acquire_owned().await.unwrap();
                    send(&client, &url, &token).await
                })
            })
            .collect();
        let mut seen = Vec::with_capacity(tasks.len());
        for task in tasks {
            seen.push(task.await.unwrap());
        }
        seen
    }

    /// Waits (at most ~2 s) until the issuer has seen `fetches` requests,
    /// then until the fetch in flight is over: a token with a never-seen
    /// `kid` queues behind the fetch in flight (single flight) and, inside
    /// that fetch's cooldown, is refused without a fetch of its own.
    async fn settle_after_fetch(&self, fetches: usize) {
        eventually("the background fetch", || {
            self.issuer.fetch_count() >= fetches
        })
        .await;
        self.get(&self.token().kid(&random_kid()).sign())
            .await
            .assert_invalid_token(UNKNOWN_KEY);
        assert_eq!(self.issuer.fetch_count(), fetches);
    }

    /// Waits (at most ~2 s) until a fetch has replaced the cached key set.
    async fn settle_after_new_key_set(&self, before: Option<u64>) {
        eventually("a new key set", || key_generation(&self.auth) != before).await;
    }
}

fn token_at(issuer: &MockIssuer, clock: &MockClock) -> TokenBuilder {
    issuer
        .token()
        .expires_at(clock.now().as_secs() as i64 + 3600)
}

async fn send(client: &reqwest::Client, url: &str, token: &str) -> Seen {
    let response = client
        .get(url)
        .header("x-meingpt-jwt", token)
        .send()
        .await
        .unwrap();
    Seen::read(response).await
}

/// Polls `done` every 10 ms for at most 2 s.
async fn eventually(what: &str, mut done: impl FnMut() -> bool) {
    for _ in 0..200 {
        if done() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("{what} did not happen within 2 s");
}

/// Signs on the blocking pool, two halves in parallel (RSA signing is the
/// slow part of a flood).
async fn sign_all(builders: Vec<TokenBuilder>) -> Vec<String> {
    let mut first = builders;
    let second = first.split_off(first.len() / 2);
    let sign = |half: Vec<TokenBuilder>| {
        tokio::task::spawn_blocking(move || {
            half.into_iter().map(TokenBuilder::sign).collect::<Vec<_>>()
        })
    };
    let (a, b) = tokio::join!(sign(first), sign(second));
    let mut tokens = a.unwrap();
    tokens.extend(b.unwrap());
    tokens
}

/// Asserts the `503` a user gets when no trusted keys are at hand.
fn assert_keys_unavailable(seen: &Seen, retry_after_secs: u64) {
    assert_eq!(seen.status, 503, "body: {}", seen.body);
    let expected = retry_after_secs.to_string();
    assert_eq!(seen.retry_after.as_deref(), Some(expected.as_str()));
    assert_eq!(seen.json()["error"], "temporarily_unavailable");
    assert_eq!(
        seen.json()["error_description"],
        "the issuer's signing keys are unavailable"
    );
}

// ---------------------------------------------------------------------------
// Single flight and unknown kids
// ---------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_hundred_concurrent_requests_at_cold_start_share_one_fetch() {
    let issuer = MockIssuer::start().await;
    let clock = MockClock::new();
    let auth = issuer.auth().clock(clock.clone()).build().unwrap();
    // Counts requests as they reach the server, before the auth layer.
    let arrived = Arc::new(AtomicUsize::new(0));
    let counter = arrived.clone();
    let router = app(&auth).layer(tower::util::MapRequestLayer::new(
        move |request: axum::extract::Request| {
            counter.fetch_add(1, Ordering::SeqCst);
            request
        },
    ));
    let me = format!("{}/me", serve(router).await);
    let tokens = sign_all(
        (0..200)
            .map(|i| token_at(&issuer, &clock).sub(&format!("user-{i}")))
            .collect(),
    )
    .await;

    // The first fetch stays open until all 200 requests are in the server.
    issuer.hold();
    let client = reqwest::Client::new();
    let requests: Vec<_> = tokens
        .into_iter()
        .map(|token| {
            let client = client.clone();
            let me = me.clone();
            tokio::spawn(async move { send(&client, &me, &token).await })
        })
        .collect();
    let deadline = Instant::now() + Duration::from_secs(20);
    while arrived.load(Ordering::SeqCst) < 200 || issuer.fetch_count() < 1 {
        assert!(
            Instant::now() < deadline,
            "{} requests and {} fetches arrived",
            arrived.load(Ordering::SeqCst),
            issuer.fetch_count()
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(
        issuer.fetch_count(),
        1,
        "a second fetch while the first is open"
    );
    issuer.release();

    for (i, request) in requests.into_iter().enumerate() {
        let seen = request.await.unwrap();
        assert_eq!(seen.status, 200, "request {i}: {}", seen.body);
        assert_eq!(seen.json()["sub"], format!("user-{i}"));
    }
    assert_eq!(issuer.fetch_count(), 1);
}

/// A request that goes away while the keys are being fetched (its client
/// disconnected, its deadline passed) cancels nothing: the fetch it started
/// completes, and the next request uses its keys without a second fetch.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_that_goes_away_does_not_cancel_the_key_fetch() {
    use tower::ServiceExt;

    let issuer = MockIssuer::start().await;
    let auth = issuer.auth().build().unwrap();
    let app = app(&auth);
    let request = |token: String| {
        axum::http::Request::get("/me")
            .header("x-meingpt-jwt", token)
            .body(axum::body::Body::empty())
            .unwrap()
    };

    issuer.hold();
    let first = tokio::spawn(app.clone().oneshot(request(issuer.token().sign())));
    eventually("the first fetch", || issuer.fetch_count() == 1).await;
    first.abort();
    assert!(first.await.unwrap_err().is_cancelled());
    issuer.release();

    let response = app.oneshot(request(issuer.token().sign())).await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(issuer.fetch_count(), 1, "the key set was fetched again");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_flood_of_unknown_kids_costs_at_most_one_fetch_per_cooldown() {
    let h = Harness::start(|b| b.jwks_cooldown(Duration::from_secs(30))).await;
    assert_eq!(h.get_valid().await.status, 200);
    assert_eq!(h.issuer.fetch_count(), 1);

    // Every 50th request carries a valid token; the rest name random kids.
    let flood = |h: &Harness| {
        (0..1000)
            .map(|i| {
                if i % 50 == 0 {
                    h.token()
                } else {
                    h.token().kid(&random_kid())
                }
            })
            .collect::<Vec<_>>()
    };
    let check = |seen: &[Seen]| {
        for (i, seen) in seen.iter().enumerate() {
            if i % 50 == 0 {
                assert_eq!(seen.status, 200, "valid token {i}: {}", seen.body);
            } else {
                seen.assert_invalid_token(UNKNOWN_KEY);
            }
        }
    };

    // Inside the cooldown of the first fetch: no fetch at all.
    let seen = h.get_all(sign_all(flood(&h)).await).await;
    check(&seen);
    assert_eq!(h.issuer.fetch_count(), 1);

    // Past the cooldown: the whole flood shares one refetch.
    h.clock.advance(Duration::from_secs(31));
    let seen = h.get_all(sign_all(flood(&h)).await).await;
    check(&seen);
    assert_eq!(h.issuer.fetch_count(), 2, "one refetch for the whole flood");

    // And none more until the next cooldown has passed.
    let seen = h.get_all(sign_all(flood(&h)).await).await;
    check(&seen);
    assert_eq!(h.issuer.fetch_count(), 2);
    assert_eq!(h.get_valid().await.status, 200);
}

#[tokio::test]
async fn a_rotated_key_is_refused_within_the_cooldown_and_accepted_after_it_with_one_fetch() {
    let h = Harness::start(|b| b.jwks_cooldown(Duration::from_secs(30))).await;
    let old_key = h.token();
    assert_eq!(h.get(&old_key.clone().sign()).await.status, 200);
    assert_eq!(h.issuer.fetch_count(), 1);

    let new_kid = h.issuer.rotate();
    assert_eq!(h.issuer.current_kid(), new_kid);
    let new_key = h.token();

    // Within the cooldown after the last fetch: refused, nothing fetched.
    h.clock.advance(Duration::from_secs(29));
    h.get(&new_key.clone().sign())
        .await
        .assert_invalid_token(UNKNOWN_KEY);
    assert_eq!(h.issuer.fetch_count(), 1);
    assert_eq!(h.get(&old_key.clone().sign()).await.status, 200);

    // Past the cooldown (measured from the last fetch and from the first
    // sighting of the new kid alike): accepted after exactly one fetch.
    h.clock.advance(Duration::from_secs(30));
    let seen = h.get(&new_key.clone().sign()).await;
    assert_eq!(seen.status, 200, "{}", seen.body);
    assert_eq!(h.issuer.fetch_count(), 2);

    // Both keys are published now: both work, with no further fetch.
    for _ in 0..3 {
        assert_eq!(h.get(&old_key.clone().sign()).await.status, 200);
        assert_eq!(h.get(&new_key.clone().sign()).await.status, 200);
    }
    assert_eq!(h.issuer.fetch_count(), 2);
}

/// Observed: the negative cache remembers a refused `kid` for a full
/// cooldown from the moment it was refused, not from the last fetch. A new
/// key first seen late in the cooldown therefore stays refused past the
/// cooldown of the last fetch, up to almost two cooldowns after it.
#[tokio::test]
async fn a_kid_refused_late_in_the_cooldown_is_fetched_as_soon_as_the_cooldown_ends() {
    // The negative cache must not stretch the cooldown: a rotated key whose
    // kid was refused 2 s before the cooldown ended is fetched right after.
    let h = Harness::start(|b| b.jwks_cooldown(Duration::from_secs(30))).await;
    assert_eq!(h.get_valid().await.status, 200);
    h.issuer.rotate();
    let new_key = h.token();

    h.clock.advance(Duration::from_secs(29));
    h.get(&new_key.clone().sign())
        .await
        .assert_invalid_token(UNKNOWN_KEY);
    h.get(&new_key.clone().sign())
        .await
        .assert_invalid_token(UNKNOWN_KEY);
    assert_eq!(h.issuer.fetch_count(), 1);

    // 31 s after the last fetch: the cooldown is over, one refetch brings
    // the new key.
    h.clock.advance(2 * SECOND);
    assert_eq!(h.get(&new_key.clone().sign()).await.status, 200);
    assert_eq!(h.issuer.fetch_count(), 2);
    assert_eq!(h.get(&new_key.sign()).await.status, 200);
    assert_eq!(h.issuer.fetch_count(), 2);
}

// ---------------------------------------------------------------------------
// Background refresh
// ---------------------------------------------------------------------------

/// Observed: the request that finds the keys past their TTL is answered from
/// the cached set (so a token of the now unpublished key still gets `200`
/// once), and one background fetch replaces the set. From then on the
/// removed key's tokens are `401` "unknown key" with no fetch of their own
/// inside the cooldown of that refresh; past the cooldown each such token
/// may cause at most one more fetch per cooldown, and stays refused.
#[tokio::test]
async fn an_unpublished_key_is_refused_once_the_background_refresh_has_replaced_the_keys() {
    let ttl = Duration::from_secs(600);
    let h = Harness::start(|b| b.jwks_ttl(ttl).jwks_cooldown(Duration::from_secs(30))).await;
    let old_key = h.token();
    assert_eq!(h.get(&old_key.clone().sign()).await.status, 200);

    h.issuer.rotate();
    let new_key = h.token();
    h.issuer.unpublish("key-1");

    // Before the TTL the cached set still holds key-1.
    h.clock.advance(ttl - SECOND);
    assert_eq!(h.get(&old_key.clone().sign()).await.status, 200);
    assert_eq!(h.issuer.fetch_count(), 1);

    // Past the TTL: this request is not held up by the refresh; it is
    // verified against the set it found.
    h.clock.advance(2 * SECOND);
    let generation = key_generation(&h.auth);
    let seen = h.get(&old_key.clone().sign()).await;
    assert_eq!(seen.status, 200, "{}", seen.body);

    eventually("the background fetch", || h.issuer.fetch_count() == 2).await;
    h.settle_after_new_key_set(generation).await;
    assert_eq!(h.issuer.fetch_count(), 2);

    h.get(&old_key.clone().sign())
        .await
        .assert_invalid_token(UNKNOWN_KEY);
    assert_eq!(h.get(&new_key.clone().sign()).await.status, 200);
    assert_eq!(h.issuer.fetch_count(), 2);

    // Past the cooldown, the retired kid may ask once more; still refused.
    h.clock.advance(Duration::from_secs(31));
    for _ in 0..5 {
        h.get(&old_key.clone().sign())
            .await
            .assert_invalid_token(UNKNOWN_KEY);
    }
    assert_eq!(h.issuer.fetch_count(), 3);
    assert_eq!(h.get(&new_key.sign()).await.status, 200);
    assert_eq!(h.issuer.fetch_count(), 3);
}

/// Keys cached, then the issuer fails with `fault`: valid tokens keep
/// working past the TTL, failed refreshes are retried no more often than
/// `retry_after`, and after recovery the next refresh succeeds.
async fn cached_keys_outlive_an_issuer_outage(fault: Fault) {
    let ttl = Duration::from_secs(60);
    let retry_after = Duration::from_secs(5);
    let timeout = Duration::from_millis(500);
    let h = Harness::start(|b| {
        b.jwks_ttl(ttl)
            .jwks_retry_after(retry_after)
            .jwks_cooldown(Duration::from_secs(30))
            .jwks_timeout(timeout)
    })
    .await;
    assert_eq!(h.get_valid().await.status, 200);
    assert_eq!(h.issuer.fetch_count(), 1);

    h.issuer.fail(fault.clone());
    h.clock.advance(ttl + SECOND);

    // The request that triggers the refresh does not wait for it.
    let started = Instant::now();
    let seen = h.get_valid().await;
    let elapsed = started.elapsed();
    assert_eq!(seen.status, 200, "{fault:?}: {}", seen.body);
    assert!(elapsed < timeout, "{fault:?}: took {elapsed:?}");
    h.settle_after_fetch(2).await;

    // Within retry_after of the failure: stale keys serve, no fetch.
    for _ in 0..5 {
        assert_eq!(h.get_valid().await.status, 200, "{fault:?}");
    }
    h.clock.advance(retry_after - SECOND);
    for _ in 0..5 {
        assert_eq!(h.get_valid().await.status, 200, "{fault:?}");
    }
    h.settle_after_fetch(2).await;

    // Once retry_after has passed: exactly one more (failing) attempt.
    h.clock.advance(SECOND);
    for _ in 0..5 {
        assert_eq!(h.get_valid().await.status, 200, "{fault:?}");
    }
    h.settle_after_fetch(3).await;

    // Recovered: the next refresh succeeds and the keys are fresh again.
    h.issuer.recover();
    h.clock.advance(retry_after);
    let generation = key_generation(&h.auth);
    assert_eq!(h.get_valid().await.status, 200, "{fault:?}");
    h.settle_after_new_key_set(generation).await;
    assert_eq!(h.issuer.fetch_count(), 4, "{fault:?}");

    h.clock.advance(retry_after);
    for _ in 0..5 {
        assert_eq!(h.get_valid().await.status, 200, "{fault:?}");
    }
    h.settle_after_fetch(4).await;
}

#[tokio::test]
async fn cached_keys_keep_serving_while_the_issuer_answers_500() {
    cached_keys_outlive_an_issuer_outage(Fault::Status(500)).await;
}

#[tokio::test]
async fn cached_keys_keep_serving_while_the_issuer_answers_garbage() {
    cached_keys_outlive_an_issuer_outage(Fault::Garbage).await;
}

#[tokio::test]
async fn cached_keys_keep_serving_while_the_issuer_hangs() {
    cached_keys_outlive_an_issuer_outage(Fault::Hang).await;
}

// ---------------------------------------------------------------------------
// Nothing (trusted) cached
// ---------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_cold_start_against_an_issuer_answering_500_gets_503_and_backs_off() {
    let retry_after = Duration::from_secs(5);
    let h = Harness::start(|b| b.jwks_retry_after(retry_after)).await;
    h.issuer.fail(Fault::Status(500));

    // Concurrent requests share the one failing fetch.
    let tokens = sign_all((0..50).map(|_| h.token()).collect()).await;
    for seen in h.get_all(tokens).await {
        assert_keys_unavailable(&seen, 5);
        assert_eq!(seen.www_authenticate, None);
    }
    assert_eq!(h.issuer.fetch_count(), 1);

    // Inside retry_after: 503 with the remaining time, no fetch, even once
    // the issuer is back.
    h.clock.advance(2 * SECOND);
    assert_keys_unavailable(&h.get_valid().await, 3);
    h.issuer.recover();
    assert_keys_unavailable(&h.get_valid().await, 3);
    assert_eq!(h.issuer.fetch_count(), 1);

    // After retry_after the next request fetches and succeeds by itself.
    h.clock.advance(3 * SECOND);
    let seen = h.get_valid().await;
    assert_eq!(seen.status, 200, "{}", seen.body);
    assert_eq!(h.issuer.fetch_count(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_cold_start_against_a_hanging_issuer_gets_503_within_the_timeout() {
    let timeout = Duration::from_millis(300);
    let retry_after = Duration::from_secs(5);
    let h = Harness::start(|b| b.jwks_timeout(timeout).jwks_retry_after(retry_after)).await;
    h.issuer.fail(Fault::Hang);
    let tokens = sign_all((0..10).map(|_| h.token()).collect()).await;

    let started = Instant::now();
    let seen = h.get_all(tokens).await;
    let elapsed = started.elapsed();

    for seen in &seen {
        assert_keys_unavailable(seen, 5);
    }
    assert!(
        elapsed < timeout + Duration::from_millis(1200),
        "took {elapsed:?}"
    );
    assert_eq!(h.issuer.fetch_count(), 1);

    // Inside retry_after: answered at once, without a fetch.
    h.clock.advance(SECOND);
    let started = Instant::now();
    assert_keys_unavailable(&h.get_valid().await, 4);
    assert!(started.elapsed() < timeout, "took {:?}", started.elapsed());
    assert_eq!(h.issuer.fetch_count(), 1);

    h.issuer.recover();
    h.clock.advance(retry_after);
    let seen = h.get_valid().await;
    assert_eq!(seen.status, 200, "{}", seen.body);
    assert_eq!(h.issuer.fetch_count(), 2);
}

// ---------------------------------------------------------------------------
// Careful fetching
// ---------------------------------------------------------------------------

#[tokio::test]
async fn a_jwks_larger_than_the_size_cap_is_refused() {
    let issuer = MockIssuer::start().await;
    let body = json!({
        "keys": [issuer.public_jwk()],
        "padding": "x".repeat(4096),
    })
    .to_string();
    assert!(body.len() > 4096);
    issuer.fail(Fault::Body(body));
    let capped = Harness::with_issuer(issuer, |b| b.jwks_max_size(2048)).await;

    assert_keys_unavailable(&capped.get_valid().await, 5);
    assert_eq!(capped.issuer.fetch_count(), 1);

    // The same body under a larger cap is a fine key set.
    let roomy = capped
        .issuer
        .auth()
        .clock(capped.clock.clone())
        .jwks_max_size(64 * 1024)
        .build()
        .unwrap();
    let roomy_url = format!("{}/me", serve(app(&roomy)).await);
    let seen = send(&capped.client, &roomy_url, &capped.valid()).await;
    assert_eq!(seen.status, 200, "{}", seen.body);
    assert_eq!(capped.issuer.fetch_count(), 2);
}

#[tokio::test]
async fn redirects_from_the_jwks_url_are_not_followed() {
    for status in [301u16, 302, 307, 308] {
        let issuer = MockIssuer::start().await;
        let target = issuer.jwks_url();
        let hits = Arc::new(AtomicUsize::new(0));
        let counter = hits.clone();
        let redirector = Router::new().route(
            "/jwks",
            get(move || {
                counter.fetch_add(1, Ordering::SeqCst);
                let target = target.clone();
                async move {
                    (
                        StatusCode::from_u16(status).unwrap(),
                        [(header::LOCATION, target)],
                    )
                }
            }),
        );
        let jwks_url = format!("{}/jwks", serve(redirector).await);
        let h = Harness::with_issuer(issuer, |b| b.jwks_url(jwks_url)).await;

        assert_keys_unavailable(&h.get_valid().await, 5);
        assert_eq!(hits.load(Ordering::SeqCst), 1, "{status}");
        assert_eq!(h.issuer.fetch_count(), 0, "{status}");
    }
}

/// What a hand-written HTTP/1.1 server sends after the response head.
#[derive(Clone)]
enum RawBody {
    /// These chunks, then the end of the body (`Transfer-Encoding: chunked`,
    /// no `Content-Length`).
    Chunked(Vec<String>),
    /// This chunk, then nothing, ever.
    Stalled(String),
    /// This chunk, then chunks of blanks for as long as the client reads.
    Endless(String),
}

/// Serves every request on a loopback port with `body`; returns the URL and
/// a counter of requests.
async fn serve_raw(body: RawBody) -> (String, Arc<AtomicUsize>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let hits = Arc::new(AtomicUsize::new(0));
    let counter = hits.clone();
    tokio::spawn(async move {
        loop {
            let Ok((mut stream, _)) = listener.accept().await else {
                return;
            };
            let body = body.clone();
            let counter = counter.clone();
            tokio::spawn(async move {
                let mut request = Vec::new();
                let mut buf = [0u8; 1024];
                while !request.windows(4).any(|w| w == b"\r\n\r\n") {
                    match stream.read(&mut buf).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => request.extend_from_slice(&buf[..n]),
                    }
                }
                counter.fetch_add(1, Ordering::SeqCst);
                let head = "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\n\
                            transfer-encoding: chunked\r\n\r\n";
                let chunk = |data: &str| format!("{:x}\r\n{data}\r\n", data.len());
                let mut out = head.to_owned();
                match body {
                    RawBody::Chunked(chunks) => {
                        for data in chunks {
                            out.push_str(&chunk(&data));
                        }
                        out.push_str("0\r\n\r\n");
                        let _ = stream.write_all(out.as_bytes()).await;
                    }
                    RawBody::Stalled(data) => {
                        out.push_str(&chunk(&data));
                        let _ = stream.write_all(out.as_bytes()).await;
                        std::future::pending::<()>().await;
                    }
                    RawBody::Endless(data) => {
                        out.push_str(&chunk(&data));
                        let blanks = chunk(&" ".repeat(1024));
                        if stream.write_all(out.as_bytes()).await.is_err() {
                            return;
                        }
                        while stream.write_all(blanks.as_bytes()).await.is_ok() {}
                    }
                }
            });
        }
    });
    (format!("http://{addr}/jwks"), hits)
}

#[tokio::test]
async fn a_jwks_streamed_without_content_length_is_cut_at_the_size_cap() {
    let issuer = MockIssuer::start().await;
    let document = json!({
        "keys": [issuer.public_jwk()],
        "padding": "x".repeat(8000),
    })
    .to_string();
    let chunks = document
        .as_bytes()
        .chunks(1000)
        .map(|c| String::from_utf8(c.to_vec()).unwrap())
        .collect();
    let (jwks_url, hits) = serve_raw(RawBody::Chunked(chunks)).await;
    let url = jwks_url.clone();
    let h = Harness::with_issuer(issuer, |b| b.jwks_url(url).jwks_max_size(4096)).await;

    assert_keys_unavailable(&h.get_valid().await, 5);
    assert_eq!(hits.load(Ordering::SeqCst), 1);

    // The same stream under a larger cap is a fine key set.
    let roomy = h
        .issuer
        .auth()
        .jwks_url(jwks_url)
        .jwks_max_size(64 * 1024)
        .clock(h.clock.clone())
        .build()
        .unwrap();
    let roomy_url = format!("{}/me", serve(app(&roomy)).await);
    let seen = send(&h.client, &roomy_url, &h.valid()).await;
    assert_eq!(seen.status, 200, "{}", seen.body);
    assert_eq!(hits.load(Ordering::SeqCst), 2);
    assert_eq!(h.issuer.fetch_count(), 0);
}

#[tokio::test]
async fn an_endless_jwks_without_content_length_gets_503_before_the_timeout() {
    // A client that reads the whole body before checking its size would
    // read until the timeout; the cap must stop the read as it streams.
    let timeout = Duration::from_secs(5);
    let (jwks_url, hits) = serve_raw(RawBody::Endless("{\"keys\":[".to_owned())).await;
    let h = Harness::start(|b| {
        b.jwks_url(jwks_url)
            .jwks_max_size(4096)
            .jwks_timeout(timeout)
    })
    .await;

    let started = Instant::now();
    let seen = h.get_valid().await;
    let elapsed = started.elapsed();

    assert_keys_unavailable(&seen, 5);
    assert!(
        elapsed < timeout,
        "took {elapsed:?}: the body was read until the timeout"
    );
    assert_eq!(hits.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn an_issuer_that_never_finishes_the_body_gets_503_within_the_timeout() {
    let timeout = Duration::from_millis(300);
    let (jwks_url, hits) = serve_raw(RawBody::Stalled("{\"keys\":[".to_owned())).await;
    let h = Harness::start(|b| b.jwks_url(jwks_url).jwks_timeout(timeout)).await;

    let started = Instant::now();
    let seen = h.get_valid().await;
    let elapsed = started.elapsed();

    assert_keys_unavailable(&seen, 5);
    assert!(
        elapsed < timeout + Duration::from_millis(1200),
        "took {elapsed:?}"
    );
    assert_eq!(hits.load(Ordering::SeqCst), 1);
}

/// A key fetch whose runtime shut down before the fetch ever ran leaves no
/// trace: the authenticator, used from another runtime, fetches anew.
#[test]
fn a_fetch_cancelled_with_its_runtime_is_started_again_from_another_runtime() {
    use futures_util::FutureExt;

    let issuer_runtime = tokio::runtime::Runtime::new().unwrap();
    let issuer = issuer_runtime.block_on(MockIssuer::start());
    let auth = issuer.auth().build().unwrap();
    let token = issuer.token().sub("user-1").sign();
    let runtime = || {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap()
    };

    let first = runtime();
    first.block_on(async {
        // One poll: the fetch is spawned on this runtime and never runs.
        assert!(auth.verify(&token).now_or_never().is_none());
    });
    drop(first);
    assert_eq!(issuer.fetch_count(), 0);

    let user = runtime().block_on(auth.verify(&token)).unwrap();
    assert_eq!(user.sub(), "user-1");
    assert_eq!(issuer.fetch_count(), 1);
}

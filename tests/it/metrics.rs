//! Metrics (feature `metrics`): what the crate reports through the `metrics`
//! facade matches what the test did, over a real server on loopback.
//!
//! Each test installs its own debugging recorder for its own thread
//! (`#[tokio::test]` runs the server, the issuer and the client on that one
//! thread), so tests running in parallel never see each other's counts.

use std::cell::RefCell;
use std::collections::HashMap;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use ::metrics::LocalRecorderGuard;
use axum::routing::get;
use axum::{Json, Router};
use meingpt_auth::testing::{Fault, MockClock, MockIssuer};
use meingpt_auth::{Clock, MeinGptAuth, MeinGptUser, Role, require_role};
use metrics_util::debugging::{DebugValue, DebuggingRecorder, Snapshotter};

use crate::common::{app, get_with, get_with_token, serve};

const SECOND: Duration = Duration::from_secs(1);

/// The metrics recorded on this thread since [`Recorded::install`].
///
/// The debugging recorder hands out counters and histograms as deltas
/// (reading resets them): they are summed here. A gauge reads as zero once
/// read, so a gauge keeps the last value it was seen set to.
struct Recorded {
    snapshotter: Snapshotter,
    counters: RefCell<HashMap<String, u64>>,
    gauges: RefCell<HashMap<String, f64>>,
    histograms: RefCell<HashMap<String, Vec<f64>>>,
    _guard: LocalRecorderGuard<'static>,
}

impl Recorded {
    fn install() -> Self {
        // Leaked so that the guard may live in the same struct; one small
        // recorder per test.
        let recorder: &'static DebuggingRecorder = Box::leak(Box::new(DebuggingRecorder::new()));
        Self {
            snapshotter: recorder.snapshotter(),
            counters: RefCell::default(),
            gauges: RefCell::default(),
            histograms: RefCell::default(),
            _guard: ::metrics::set_default_local_recorder(recorder),
        }
    }

    /// Folds what was recorded since the last reading into the totals.
    fn read(&self) {
        for (key, _, _, value) in self.snapshotter.snapshot().into_vec() {
            let (_, key) = key.into_parts();
            let mut labels: Vec<String> = key
                .labels()
                .map(|label| format!("{}={}", label.key(), label.value()))
                .collect();
            labels.sort();
            let name = format!("{}{{{}}}", key.name(), labels.join(","));
            match value {
                DebugValue::Counter(delta) => {
                    *self.counters.borrow_mut().entry(name).or_default() += delta;
                }
                DebugValue::Gauge(value) => {
                    let mut gauges = self.gauges.borrow_mut();
                    if value.0 != 0.0 || !gauges.contains_key(&name) {
                        gauges.insert(name, value.0);
                    }
                }
                DebugValue::Histogram(values) => self
                    .histograms
                    .borrow_mut()
                    .entry(name)
                    .or_default()
                    .extend(values.into_iter().map(|value| value.0)),
            }
        }
    }

    /// The total of a counter, by its Prometheus-like name
    /// (`name{label=value,…}`, labels sorted).
    fn counter(&self, name: &str) -> u64 {
        self.read();
        self.counters.borrow().get(name).copied().unwrap_or(0)
    }

    fn gauge(&self, name: &str) -> Option<f64> {
        self.read();
        self.gauges.borrow().get(name).copied()
    }

    fn histogram(&self, name: &str) -> Vec<f64> {
        self.read();
        self.histograms
            .borrow()
            .get(name)
            .cloned()
            .unwrap_or_default()
    }

    fn requests(&self, outcome: &str) -> u64 {
        self.counter(&format!("meingpt_auth_requests_total{{outcome={outcome}}}"))
    }

    fn fetches(&self, kind: &str, result: &str) -> u64 {
        self.counter(&format!(
            "meingpt_auth_jwks_fetches_total{{kind={kind},result={result}}}"
        ))
    }

    fn cache(&self, result: &str) -> u64 {
        self.counter(&format!(
            "meingpt_auth_verified_token_cache_total{{result={result}}}"
        ))
    }

    fn stale_keys_served(&self) -> u64 {
        self.counter("meingpt_auth_stale_keys_served_total{}")
    }

    fn keys(&self, source: &str) -> Option<f64> {
        self.gauge(&format!("meingpt_auth_keys{{source={source}}}"))
    }

    fn fetch_durations(&self, kind: &str) -> Vec<f64> {
        self.histogram(&format!(
            "meingpt_auth_jwks_fetch_duration_seconds{{kind={kind}}}"
        ))
    }
}

fn now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

/// Polls `done` every 10 ms for at most 5 s.
async fn eventually(what: &str, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + 5 * SECOND;
    while Instant::now() < deadline {
        if done() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("{what} did not happen in time");
}

#[tokio::test]
async fn requests_are_counted_by_outcome_with_one_jwks_fetch_and_cache_hits_for_repeated_tokens() {
    let metrics = Recorded::install();
    let issuer = MockIssuer::start().await;
    let second_kid = issuer.rotate();
    let auth = issuer.auth().build().unwrap();
    let base = serve(app(&auth)).await;
    let me = format!("{base}/me");

    // N good requests with one token (the MCP case).
    let good = issuer.token().sign();
    for _ in 0..5 {
        assert_eq!(get_with_token(&me, &good).await.status, 200);
    }
    // M bad tokens.
    let bad = [
        issuer.token().expires_at(now() - 3600).sign(),
        issuer.token().audience("another-org").sign(),
        format!("{}x", issuer.token().sub("forged").sign()),
    ];
    for token in &bad {
        assert_eq!(get_with_token(&me, token).await.status, 401);
    }
    // K requests without a token.
    for _ in 0..4 {
        assert_eq!(get_with(&me, &[]).await.status, 401);
    }
    // A malformed request.
    let seen = get_with(&me, &[("authorization", "Bearer a b")]).await;
    assert_eq!(seen.status, 400, "{}", seen.body);

    assert_eq!(issuer.fetch_count(), 1);
    assert_eq!(metrics.requests("ok"), 5);
    assert_eq!(metrics.requests("invalid_token"), 3);
    assert_eq!(metrics.requests("unauthorized"), 4);
    assert_eq!(metrics.requests("invalid_request"), 1);
    assert_eq!(metrics.requests("anonymous"), 0);
    assert_eq!(metrics.cache("hit"), 4);
    assert_eq!(metrics.cache("miss"), 1 + 3);
    assert_eq!(metrics.fetches("jwks", "ok"), 1);
    assert_eq!(metrics.fetch_durations("jwks").len(), 1);
    assert_eq!(metrics.fetches("discovery", "ok"), 0);
    assert_eq!(metrics.stale_keys_served(), 0);
    // Both published keys (the first and the rotated one), under the JWKS URL.
    assert_eq!(issuer.current_kid(), second_kid);
    assert_eq!(metrics.keys(&issuer.jwks_url()), Some(2.0));
}

#[tokio::test]
async fn guard_refusals_and_anonymous_requests_are_counted() {
    let metrics = Recorded::install();
    let issuer = MockIssuer::start().await;
    let auth = issuer.auth().build().unwrap();
    let base = serve(app(&auth)).await;
    let optional = Router::new()
        .route(
            "/admin",
            get(|| async { "admins" }).route_layer(require_role(Role::Admin)),
        )
        .route(
            "/hello",
            get(|user: Option<MeinGptUser>| async move { Json(user.map(|u| u.sub().to_owned())) }),
        )
        .layer(auth.optional_layer());
    let optional_base = serve(optional).await;

    let member = issuer.token().role("member").sign();
    let admin = issuer.token().role("admin").sub("admin-1").sign();
    assert_eq!(
        get_with_token(&format!("{base}/admin"), &member)
            .await
            .status,
        403
    );
    assert_eq!(
        get_with_token(&format!("{base}/admin"), &admin)
            .await
            .status,
        200
    );
    assert_eq!(
        get_with(&format!("{optional_base}/hello"), &[])
            .await
            .status,
        200
    );
    assert_eq!(
        get_with(&format!("{optional_base}/admin"), &[])
            .await
            .status,
        401
    );

    // The layer admitted both users (the guard then refused the member) and
    // both anonymous requests (the guard then asked for a token).
    assert_eq!(metrics.requests("ok"), 2);
    assert_eq!(metrics.requests("insufficient_scope"), 1);
    assert_eq!(metrics.requests("anonymous"), 2);
    assert_eq!(metrics.requests("unauthorized"), 1);
    assert_eq!(issuer.fetch_count(), 1);
}

#[tokio::test]
async fn an_old_login_is_counted_as_insufficient_user_authentication() {
    let metrics = Recorded::install();
    let issuer = MockIssuer::start().await;
    let auth = issuer
        .auth()
        .max_auth_age(Duration::from_secs(60))
        .build()
        .unwrap();
    let me = format!("{}/me", serve(app(&auth)).await);
    let old_login = issuer.token().claim("auth_time", now() - 3600).sign();
    let fresh_login = issuer.token().claim("auth_time", now()).sign();

    assert_eq!(get_with_token(&me, &old_login).await.status, 401);
    assert_eq!(get_with_token(&me, &fresh_login).await.status, 200);
    assert_eq!(metrics.requests("insufficient_user_authentication"), 1);
    assert_eq!(metrics.requests("ok"), 1);
}

#[tokio::test]
async fn an_issuer_down_from_the_start_is_counted_as_unavailable_and_a_failed_fetch() {
    let metrics = Recorded::install();
    let issuer = MockIssuer::start().await;
    issuer.fail(Fault::Status(500));
    let auth = issuer.auth().build().unwrap();
    let me = format!("{}/me", serve(app(&auth)).await);

    let seen = get_with_token(&me, &issuer.token().sign()).await;
    assert_eq!(seen.status, 503, "{}", seen.body);
    assert_eq!(metrics.requests("unavailable"), 1);
    assert_eq!(metrics.fetches("jwks", "status"), 1);
    assert_eq!(metrics.fetches("jwks", "ok"), 0);
    assert_eq!(metrics.fetch_durations("jwks").len(), 1);
    // No key set was ever fetched: no key count.
    assert_eq!(metrics.keys(&issuer.jwks_url()), None);
}

#[tokio::test]
async fn an_openid_connect_issuer_counts_its_discovery_and_jwks_fetches() {
    let metrics = Recorded::install();
    let issuer = MockIssuer::start().await;
    let auth = MeinGptAuth::oidc(issuer.issuer())
        .audience("api")
        .build()
        .unwrap();
    let me = format!("{}/me", serve(app(&auth)).await);

    let token = issuer.token().audience("api").sign();
    assert_eq!(get_with_token(&me, &token).await.status, 200);
    assert_eq!(issuer.discovery_count(), 1);
    assert_eq!(issuer.fetch_count(), 1);
    assert_eq!(metrics.fetches("discovery", "ok"), 1);
    assert_eq!(metrics.fetches("jwks", "ok"), 1);
    assert_eq!(metrics.fetch_durations("discovery").len(), 1);
    assert_eq!(metrics.fetch_durations("jwks").len(), 1);
    let discovery = format!("{}/.well-known/openid-configuration", issuer.issuer());
    assert_eq!(metrics.keys(&discovery), Some(1.0));
}

#[tokio::test]
async fn a_failing_issuer_counts_fetch_errors_and_stale_keys_served_after_the_ttl() {
    let metrics = Recorded::install();
    let issuer = MockIssuer::start().await;
    let clock = MockClock::new();
    let ttl = Duration::from_secs(60);
    let retry_after = Duration::from_secs(5);
    let timeout = Duration::from_millis(300);
    let auth = issuer
        .auth()
        .clock(clock.clone())
        .jwks_ttl(ttl)
        .jwks_retry_after(retry_after)
        .jwks_timeout(timeout)
        .build()
        .unwrap();
    let me = format!("{}/me", serve(app(&auth)).await);
    // Tokens valid for an hour of the mock clock; each `sub` a new token.
    let token = |sub: &str| {
        issuer
            .token()
            .sub(sub)
            .expires_at(clock.now().as_secs() as i64 + 3600)
            .sign()
    };

    let first = token("user-1");
    assert_eq!(get_with_token(&me, &first).await.status, 200);
    assert_eq!(metrics.fetches("jwks", "ok"), 1);

    // Within the TTL the keys are fresh: nothing stale.
    clock.advance(ttl - SECOND);
    assert_eq!(get_with_token(&me, &token("user-2")).await.status, 200);
    assert_eq!(metrics.stale_keys_served(), 0);

    // Past the TTL, the issuer answers 500: the request that finds the keys
    // due starts the refresh and is served before it failed (not counted).
    issuer.fail(Fault::Status(500));
    clock.advance(2 * SECOND);
    assert_eq!(get_with_token(&me, &token("user-3")).await.status, 200);
    eventually("the failed refresh", || {
        metrics.fetches("jwks", "status") == 1
    })
    .await;
    assert_eq!(metrics.stale_keys_served(), 0);

    // Now the keys serve because the issuer failed: two fresh tokens and a
    // remembered one.
    assert_eq!(get_with_token(&me, &token("user-4")).await.status, 200);
    assert_eq!(get_with_token(&me, &token("user-5")).await.status, 200);
    assert_eq!(get_with_token(&me, &first).await.status, 200);
    assert_eq!(metrics.stale_keys_served(), 3);
    assert_eq!(issuer.fetch_count(), 2);

    // The next attempts: a body that is no JWKS, then no answer at all.
    issuer.fail(Fault::Garbage);
    clock.advance(retry_after);
    assert_eq!(get_with_token(&me, &token("user-6")).await.status, 200);
    eventually("the malformed refresh", || {
        metrics.fetches("jwks", "malformed") == 1
    })
    .await;
    issuer.fail(Fault::Hang);
    clock.advance(retry_after);
    assert_eq!(get_with_token(&me, &token("user-7")).await.status, 200);
    eventually("the timed-out refresh", || {
        metrics.fetches("jwks", "timeout") == 1
    })
    .await;

    // Recovered: the refresh succeeds and the keys are fresh again.
    issuer.recover();
    clock.advance(retry_after);
    let generation = meingpt_auth::testing::key_generation(&auth);
    assert_eq!(get_with_token(&me, &token("user-8")).await.status, 200);
    eventually("the good refresh", || {
        meingpt_auth::testing::key_generation(&auth) != generation
    })
    .await;
    let stale = metrics.stale_keys_served();
    assert_eq!(get_with_token(&me, &token("user-9")).await.status, 200);
    assert_eq!(metrics.stale_keys_served(), stale);

    assert_eq!(metrics.fetches("jwks", "ok"), 2);
    assert_eq!(metrics.fetches("jwks", "status"), 1);
    assert_eq!(metrics.fetches("jwks", "malformed"), 1);
    assert_eq!(metrics.fetches("jwks", "timeout"), 1);
    assert_eq!(metrics.fetch_durations("jwks").len(), 5);
    assert_eq!(issuer.fetch_count(), 5);
    assert_eq!(metrics.requests("ok"), 10);
}

#[tokio::test]
async fn labels_carry_no_request_data() {
    let metrics = Recorded::install();
    let issuer = MockIssuer::start().await;
    let auth = issuer.auth().build().unwrap();
    let me = format!("{}/me", serve(app(&auth)).await);
    let token = issuer
        .token()
        .sub("user-secret-sub")
        .email("secret@example.com")
        .sign();
    assert_eq!(get_with_token(&me, &token).await.status, 200);
    let unknown = issuer.token().kid("secret-kid").sign();
    assert_eq!(get_with_token(&me, &unknown).await.status, 401);

    metrics.read();
    let names: Vec<String> = metrics
        .counters
        .borrow()
        .keys()
        .chain(metrics.gauges.borrow().keys())
        .chain(metrics.histograms.borrow().keys())
        .cloned()
        .collect();
    assert!(names.len() >= 5, "{names:?}");
    for name in &names {
        assert!(name.starts_with("meingpt_auth_"), "{name}");
        for secret in ["secret", "example.com", &token[..20]] {
            assert!(!name.contains(secret), "{name} holds request data");
        }
    }
}

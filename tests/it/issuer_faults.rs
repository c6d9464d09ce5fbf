//! A hostile or broken issuer: every way its JWKS endpoint can fail, and
//! what that means for users.
//!
//! For each fault these tests assert, through a real server on loopback:
//!
//! - what a valid token gets (`503` with `Retry-After` while no trusted keys
//!   are cached, `200` from the cached keys otherwise);
//! - what a token naming an unknown `kid` gets;
//! - how many fetches the issuer saw;
//! - that no request waits longer than the fetch timeout (each is bounded
//!   with `tokio::time::timeout`);
//! - that service resumes once the issuer recovers.
//!
//! Timeouts and cooldowns are small, and time moves with a `MockClock`: the
//! only real waits are fetch timeouts (300 ms) and short polls for
//! background refreshes.
//!
//! The content type of a JWKS response is not checked: a body that is a
//! valid key set is accepted whatever `Content-Type` says (see
//! `jwks_served_as_text_html_or_any_other_content_type_is_accepted`).

use std::io;
use std::net::TcpListener as StdTcpListener;
use std::time::{Duration, Instant};

use crate::common::answers::UNKNOWN_KEY;
use crate::common::{Seen, app, random_kid, serve};
use aws_lc_rs::rsa::KeySize;
use aws_lc_rs::signature::{KeyPair, RsaKeyPair};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use meingpt_auth::testing::{
    Fault, MockClock, MockIssuer, TokenBuilder, key_generation, verified_token_count,
};
use meingpt_auth::{Clock, MeinGptAuth, MeinGptAuthBuilder};
use serde_json::{Value, json};

const SECOND: Duration = Duration::from_secs(1);

/// The fetch timeout every test configures.
const TIMEOUT: Duration = Duration::from_millis(300);
/// No new fetch this long after a failed one; sent as `Retry-After`.
const RETRY_AFTER: Duration = Duration::from_secs(5);
/// Keys older than this are refreshed in the background.
const TTL: Duration = Duration::from_secs(60);
/// At most one fetch per cooldown for unknown `kid`s.
const COOLDOWN: Duration = Duration::from_secs(30);
/// How long past the TTL cached keys serve while the issuer fails.
const MAX_STALE: Duration = Duration::from_secs(600);
/// Room for a loaded machine on top of the fetch timeout.
const SLACK: Duration = Duration::from_millis(1200);

// ---------------------------------------------------------------------------
// Harness
// ---------------------------------------------------------------------------

/// A mock issuer, a mock clock, and the quickstart app behind the layer.
struct Harness {
    issuer: MockIssuer,
    clock: MockClock,
    auth: MeinGptAuth,
    me: String,
    client: reqwest::Client,
}

impl Harness {
    /// The app with the small settings above, adjusted by `configure`.
    async fn start(configure: impl FnOnce(MeinGptAuthBuilder) -> MeinGptAuthBuilder) -> Self {
        let issuer = MockIssuer::start().await;
        let clock = MockClock::new();
        let builder = issuer
            .auth()
            .clock(clock.clone())
            .jwks_timeout(TIMEOUT)
            .jwks_retry_after(RETRY_AFTER)
            .jwks_ttl(TTL)
            .jwks_cooldown(COOLDOWN)
            .jwks_max_stale(MAX_STALE);
        let auth = configure(builder).build().unwrap();
        let base = serve(app(&auth)).await;
        Self {
            issuer,
            clock,
            auth,
            me: format!("{base}/me"),
            client: reqwest::Client::new(),
        }
    }

    /// A token from the issuer's current key, valid for an hour of the mock
    /// clock.
    fn token(&self) -> TokenBuilder {
        self.issuer
            .token()
            .expires_at(self.clock.now().as_secs() as i64 + 3600)
    }

    fn valid(&self) -> String {
        self.token().sign()
    }

    /// A validly signed token naming a `kid` nobody ever published.
    fn unknown_kid(&self) -> String {
        self.token().kid(&random_kid()).sign()
    }

    /// `GET /me` with `token`; fails the test if the answer takes longer
    /// than the fetch timeout (plus room for a loaded machine).
    async fn get(&self, token: &str) -> Seen {
        let request = self
            .client
            .get(&self.me)
            .header("x-meingpt-jwt", token)
            .send();
        let response = tokio::time::timeout(TIMEOUT + SLACK, request)
            .await
            .expect("no answer within the fetch timeout")
            .unwrap();
        Seen::read(response).await
    }

    fn fetches(&self) -> usize {
        self.issuer.fetch_count()
    }

    /// Waits until the issuer has seen `fetches` requests and the fetch in
    /// flight is over: a never-seen `kid` queues behind that fetch and,
    /// inside its cooldown, is refused without a fetch of its own.
    async fn settle_after_fetch(&self, fetches: usize) {
        eventually("the background fetch", || self.fetches() >= fetches).await;
        self.get(&self.unknown_kid())
            .await
            .assert_invalid_token(UNKNOWN_KEY);
        assert_eq!(self.fetches(), fetches);
    }

    /// Waits until a fetch has replaced the cached key set.
    async fn settle_after_new_key_set(&self, before: Option<u64>) {
        eventually("a new key set", || key_generation(&self.auth) != before).await;
    }
}

/// Polls `done` every 10 ms for at most 2 s plus the fetch timeout.
async fn eventually(what: &str, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + TIMEOUT + 2 * SECOND;
    while Instant::now() < deadline {
        if done() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("{what} did not happen in time");
}

/// The `503` a user gets when no trusted keys are at hand.
fn assert_keys_unavailable(seen: &Seen, retry_after_secs: u64, what: &str) {
    assert_eq!(seen.status, 503, "{what}: {}", seen.body);
    let expected = retry_after_secs.to_string();
    assert_eq!(
        seen.retry_after.as_deref(),
        Some(expected.as_str()),
        "{what}"
    );
    assert_eq!(seen.www_authenticate, None, "{what}");
    assert_eq!(seen.json()["error"], "temporarily_unavailable", "{what}");
    assert_eq!(
        seen.json()["error_description"],
        "the issuer's signing keys are unavailable"
    );
}

fn jwks_body(keys: &[Value]) -> String {
    json!({ "keys": keys }).to_string()
}

/// Asserts `seen` is a `200` for the default user.
fn assert_served(seen: &Seen, what: &str) {
    assert_eq!(seen.status, 200, "{what}: {}", seen.body);
    assert_eq!(seen.json()["sub"], "user-1", "{what}");
}

// ---------------------------------------------------------------------------
// The two situations every fault is tried in
// ---------------------------------------------------------------------------

/// Nothing cached and the issuer fails with `fault`: every request gets
/// `503` with `Retry-After` within the fetch timeout, the issuer sees one
/// fetch per `retry_after`, and once it recovers the next request gets in.
///
/// Fetches observed: 1 at the first request, none inside `retry_after`, 1
/// more after it (still failing), 1 after recovery: 3 in all.
async fn cold_start_against(what: &str, fault: impl FnOnce(&MockIssuer) -> Fault) {
    let h = Harness::start(|b| b).await;
    h.issuer.fail(fault(&h.issuer));

    assert_keys_unavailable(&h.get(&h.valid()).await, 5, what);
    assert_eq!(h.fetches(), 1, "{what}");

    // Inside retry_after: no key set to say a kid is unknown, so 503 too;
    // nothing is fetched.
    h.clock.advance(SECOND);
    assert_keys_unavailable(&h.get(&h.unknown_kid()).await, 4, what);
    assert_keys_unavailable(&h.get(&h.valid()).await, 4, what);
    assert_eq!(h.fetches(), 1, "{what}");

    // After retry_after: one more attempt, which fails too.
    h.clock.advance(RETRY_AFTER);
    assert_keys_unavailable(&h.get(&h.valid()).await, 5, what);
    assert_eq!(h.fetches(), 2, "{what}");

    // Recovered: the first request after retry_after fetches and gets in.
    h.issuer.recover();
    h.clock.advance(RETRY_AFTER);
    assert_served(&h.get(&h.valid()).await, what);
    assert_eq!(h.fetches(), 3, "{what}");
    h.get(&h.unknown_kid())
        .await
        .assert_invalid_token(UNKNOWN_KEY);
    assert_served(&h.get(&h.valid()).await, what);
    assert_eq!(h.fetches(), 3, "{what}");
}

/// The issuer answers with a well-formed JWKS that holds no usable key:
/// an answer, not an outage. At cold start a valid token gets `401` (not
/// `503`); once cached keys are due, the refresh replaces them and the
/// withdrawn key's tokens get `401` too.
async fn answered_without_usable_keys(what: &str, fault: impl Fn(&MockIssuer) -> Fault) {
    let h = Harness::start(|b| b).await;
    h.issuer.fail(fault(&h.issuer));
    h.get(&h.valid()).await.assert_invalid_token(UNKNOWN_KEY);
    assert_eq!(h.fetches(), 1, "{what}");

    let h = Harness::start(|b| b).await;
    assert_served(&h.get(&h.valid()).await, what);
    h.issuer.fail(fault(&h.issuer));
    h.clock.advance(TTL + SECOND);
    let before = key_generation(&h.auth);
    let _ = h.get(&h.valid()).await;
    h.settle_after_new_key_set(before).await;
    h.get(&h.valid()).await.assert_invalid_token(UNKNOWN_KEY);
    assert_eq!(h.fetches(), 2, "{what}");
}

/// Keys cached, then the issuer fails with `fault` when they are due for a
/// refresh: valid tokens keep getting `200` from the cached keys without
/// waiting for the issuer; unknown `kid`s get `401` and cost at most one
/// (failing) fetch per cooldown; once the issuer recovers, the next refresh
/// brings fresh keys.
///
/// Fetches observed: 1 at cold start, 1 failed background refresh, 1 failed
/// refetch for an unknown kid past the cooldown, 1 successful refresh after
/// recovery: 4 in all.
async fn refresh_against(what: &str, fault: impl FnOnce(&MockIssuer) -> Fault) {
    let h = Harness::start(|b| b).await;
    assert_served(&h.get(&h.valid()).await, what);
    assert_eq!(h.fetches(), 1, "{what}");
    h.issuer.fail(fault(&h.issuer));

    // Inside the cooldown of the first fetch: an unknown kid costs nothing.
    h.get(&h.unknown_kid())
        .await
        .assert_invalid_token(UNKNOWN_KEY);
    assert_eq!(h.fetches(), 1, "{what}");

    // Past the TTL: served from the cached keys (at once, as
    // `a_cached_key_is_served_while_its_refresh_is_held_at_the_issuer`
    // shows); the background refresh fails.
    h.clock.advance(TTL + SECOND);
    assert_served(&h.get(&h.valid()).await, what);
    h.settle_after_fetch(2).await;
    for _ in 0..3 {
        assert_served(&h.get(&h.valid()).await, what);
        h.get(&h.unknown_kid())
            .await
            .assert_invalid_token(UNKNOWN_KEY);
    }
    assert_eq!(h.fetches(), 2, "{what}");

    // Past the cooldown (and retry_after): an unknown kid may ask once more;
    // that fetch fails too and the kid stays unknown.
    h.clock.advance(COOLDOWN + SECOND);
    h.get(&h.unknown_kid())
        .await
        .assert_invalid_token(UNKNOWN_KEY);
    assert_eq!(h.fetches(), 3, "{what}");
    for _ in 0..3 {
        assert_served(&h.get(&h.valid()).await, what);
        h.get(&h.unknown_kid())
            .await
            .assert_invalid_token(UNKNOWN_KEY);
    }
    h.settle_after_fetch(3).await;

    // Recovered: the next refresh succeeds.
    h.issuer.recover();
    h.clock.advance(COOLDOWN + SECOND);
    let generation = key_generation(&h.auth);
    assert_served(&h.get(&h.valid()).await, what);
    h.settle_after_new_key_set(generation).await;
    assert_eq!(h.fetches(), 4, "{what}");
    assert_served(&h.get(&h.valid()).await, what);
    h.get(&h.unknown_kid())
        .await
        .assert_invalid_token(UNKNOWN_KEY);
    assert_eq!(h.fetches(), 4, "{what}");
}

/// A JWKS with the issuer's real key plus `hostile` entries under the kid
/// `hostile`: the real key serves, and a token naming `hostile` — signed by
/// the real key, so that using the entry would let it in — is an unknown
/// key, costing at most one fetch per cooldown.
///
/// Fetches observed: 1 at cold start, none inside the cooldown, 1 past it.
async fn hostile_entries_beside_a_good_key_are_never_used(
    what: &str,
    hostile: impl FnOnce(&MockIssuer) -> Vec<Value>,
) {
    let h = Harness::start(|b| b).await;
    let mut keys = vec![h.issuer.public_jwk()];
    keys.extend(hostile(&h.issuer).into_iter().map(|mut entry| {
        entry["kid"] = json!("hostile");
        entry
    }));
    h.issuer.fail(Fault::Body(jwks_body(&keys)));
    let hostile_token = || h.token().kid("hostile").sign();

    assert_served(&h.get(&h.valid()).await, what);
    h.get(&hostile_token())
        .await
        .assert_invalid_token(UNKNOWN_KEY);
    assert_eq!(h.fetches(), 1, "{what}");

    h.clock.advance(COOLDOWN + SECOND);
    for _ in 0..3 {
        h.get(&hostile_token())
            .await
            .assert_invalid_token(UNKNOWN_KEY);
        assert_served(&h.get(&h.valid()).await, what);
    }
    assert_eq!(h.fetches(), 2, "{what}");
}

// ---------------------------------------------------------------------------
// Error statuses
// ---------------------------------------------------------------------------

#[tokio::test]
async fn status_500_at_cold_start_gets_503_until_the_issuer_recovers() {
    cold_start_against("500", |_| Fault::Status(500)).await;
}

/// Past the TTL a cached key is served at once and the refresh it starts
/// runs behind the answer. The issuer holds that refresh and the fetch
/// timeout is a minute, so an answer that waited for the refresh would not
/// come within `Harness::get`'s patience. No wall-clock figure is compared:
/// the test holds on a loaded machine.
#[tokio::test]
async fn a_cached_key_is_served_while_its_refresh_is_held_at_the_issuer() {
    let h = Harness::start(|b| b.jwks_timeout(Duration::from_secs(60))).await;
    assert_served(&h.get(&h.valid()).await, "before the TTL");
    assert_eq!(h.fetches(), 1);

    h.issuer.hold();
    h.clock.advance(TTL + SECOND);
    assert_served(&h.get(&h.valid()).await, "refresh held");
    eventually("the refresh at the issuer", || h.fetches() == 2).await;
    assert_served(&h.get(&h.valid()).await, "refresh still held");
    assert_eq!(h.fetches(), 2, "a second refresh while the first is held");

    h.issuer.release();
    h.settle_after_fetch(2).await;
    assert_served(&h.get(&h.valid()).await, "after the refresh");
}

#[tokio::test]
async fn status_500_at_refresh_leaves_the_cached_keys_serving() {
    refresh_against("500", |_| Fault::Status(500)).await;
}

#[tokio::test]
async fn any_status_but_200_is_a_failed_fetch() {
    // Success codes other than 200 (with a body that is not a key set) and
    // the usual error codes alike.
    for status in [201, 204, 400, 401, 403, 404, 429, 502, 503] {
        cold_start_against(&status.to_string(), |_| Fault::Status(status)).await;
    }
}

// ---------------------------------------------------------------------------
// Bodies that are not a key set
// ---------------------------------------------------------------------------

/// Bodies served with `200 application/json` that are not a usable JWKS,
/// each named, built for the issuer at hand.
type FaultFor = fn(&MockIssuer) -> Fault;

fn garbage_bodies() -> Vec<(&'static str, FaultFor)> {
    vec![
        ("garbage", |_| Fault::Garbage),
        ("empty body", |_| Fault::Body(String::new())),
        ("null", |_| Fault::Body("null".to_owned())),
        ("keys not an array", |_| {
            Fault::Body(r#"{"keys":{}}"#.to_owned())
        }),
        ("keys of strings", |_| {
            Fault::Body(r#"{"keys":["key-1"]}"#.to_owned())
        }),
        ("10,000-deep JSON", |_| {
            Fault::Body(format!(
                r#"{{"keys":{}{}}}"#,
                "[".repeat(10_000),
                "]".repeat(10_000)
            ))
        }),
        ("duplicate keys members", |issuer| {
            Fault::Body(format!(r#"{{"keys":[],"keys":[{}]}}"#, issuer.public_jwk()))
        }),
        ("trailing garbage", |issuer| {
            Fault::Body(format!("{} {{}}", jwks_body(&[issuer.public_jwk()])))
        }),
    ]
}

#[tokio::test]
async fn garbage_json_at_cold_start_gets_503_until_the_issuer_recovers() {
    for (what, fault) in garbage_bodies() {
        cold_start_against(what, fault).await;
    }
}

#[tokio::test]
async fn garbage_json_at_refresh_leaves_the_cached_keys_serving() {
    // The plainest two, and the deepest: no stack overflow in the
    // background refresh either.
    let bodies = garbage_bodies();
    for (what, fault) in [bodies[0], bodies[1], bodies[5]] {
        refresh_against(what, fault).await;
    }
}

#[tokio::test]
async fn truncated_body_at_cold_start_gets_503_until_the_issuer_recovers() {
    // Content-Length announces the whole JWKS; half of it comes, then the
    // connection closes.
    cold_start_against("truncated", |_| Fault::Truncated).await;
}

#[tokio::test]
async fn truncated_body_at_refresh_leaves_the_cached_keys_serving() {
    refresh_against("truncated", |_| Fault::Truncated).await;
}

// ---------------------------------------------------------------------------
// Size and time
// ---------------------------------------------------------------------------

/// A real JWKS padded past 4 KiB.
fn oversize_jwks(issuer: &MockIssuer) -> Fault {
    let body = json!({
        "keys": [issuer.public_jwk()],
        "padding": "x".repeat(8 * 1024),
    })
    .to_string();
    Fault::Body(body)
}

#[tokio::test]
async fn body_over_the_size_cap_at_cold_start_gets_503_until_the_issuer_recovers() {
    let h = Harness::start(|b| b.jwks_max_size(4096)).await;
    h.issuer.fail(oversize_jwks(&h.issuer));

    assert_keys_unavailable(&h.get(&h.valid()).await, 5, "oversize");
    h.clock.advance(SECOND);
    assert_keys_unavailable(&h.get(&h.unknown_kid()).await, 4, "oversize");
    assert_eq!(h.fetches(), 1);

    h.clock.advance(RETRY_AFTER);
    assert_keys_unavailable(&h.get(&h.valid()).await, 5, "oversize");
    assert_eq!(h.fetches(), 2);

    h.issuer.recover();
    h.clock.advance(RETRY_AFTER);
    assert_served(&h.get(&h.valid()).await, "oversize");
    h.get(&h.unknown_kid())
        .await
        .assert_invalid_token(UNKNOWN_KEY);
    assert_eq!(h.fetches(), 3);
}

#[tokio::test]
async fn body_over_the_size_cap_at_refresh_leaves_the_cached_keys_serving() {
    let h = Harness::start(|b| b.jwks_max_size(4096)).await;
    assert_served(&h.get(&h.valid()).await, "oversize");
    h.issuer.fail(oversize_jwks(&h.issuer));

    h.clock.advance(TTL + SECOND);
    assert_served(&h.get(&h.valid()).await, "oversize");
    h.settle_after_fetch(2).await;
    assert_served(&h.get(&h.valid()).await, "oversize");

    h.issuer.recover();
    h.clock.advance(RETRY_AFTER);
    let generation = key_generation(&h.auth);
    assert_served(&h.get(&h.valid()).await, "oversize");
    h.settle_after_new_key_set(generation).await;
    assert_eq!(h.fetches(), 3);
}

#[tokio::test]
async fn issuer_sending_one_byte_a_second_is_given_up_at_the_timeout_at_cold_start() {
    // The drip never stalls for more than a second, so only the timeout on
    // the whole fetch (not one per read) ends it.
    let h = Harness::start(|b| b).await;
    h.issuer.fail(Fault::Slow(SECOND));

    let started = Instant::now();
    assert_keys_unavailable(&h.get(&h.valid()).await, 5, "slow");
    let elapsed = started.elapsed();
    assert!(
        elapsed >= TIMEOUT - Duration::from_millis(50),
        "gave up after {elapsed:?}, before the timeout"
    );
    assert_eq!(h.fetches(), 1);
    drop(h);

    cold_start_against("slow", |_| Fault::Slow(SECOND)).await;
}

#[tokio::test]
async fn issuer_sending_one_byte_a_second_is_given_up_at_the_timeout_at_refresh() {
    refresh_against("slow", |_| Fault::Slow(SECOND)).await;
}

#[tokio::test]
async fn issuer_down_past_the_stale_limit_gets_503_until_it_recovers() {
    let h = Harness::start(|b| b).await;
    let remembered = h.valid();
    assert_served(&h.get(&remembered).await, "remembered");
    assert_eq!(verified_token_count(&h.auth), 1);
    h.issuer.fail(Fault::Status(503));

    // One second before the stale limit: still served; the refresh fails.
    h.clock.advance(TTL + MAX_STALE - SECOND);
    assert_served(&h.get(&h.valid()).await, "stale");
    h.settle_after_fetch(2).await;
    assert_served(&h.get(&remembered).await, "remembered, stale");

    // One second past it: no key is trusted any more — neither for fresh
    // tokens, nor for an unknown kid, nor for a token verified before.
    h.clock.advance(2 * SECOND);
    for token in [h.valid(), h.unknown_kid(), remembered.clone()] {
        assert_keys_unavailable(&h.get(&token).await, 3, "past the stale limit");
    }
    assert_eq!(h.fetches(), 2);

    // After retry_after the request itself fetches; the issuer still fails.
    h.clock.advance(3 * SECOND);
    assert_keys_unavailable(&h.get(&h.valid()).await, 5, "past the stale limit");
    assert_eq!(h.fetches(), 3);

    h.issuer.recover();
    h.clock.advance(RETRY_AFTER);
    assert_served(&h.get(&remembered).await, "remembered, recovered");
    assert_served(&h.get(&h.valid()).await, "recovered");
    h.get(&h.unknown_kid())
        .await
        .assert_invalid_token(UNKNOWN_KEY);
    assert_eq!(h.fetches(), 4);
}

// ---------------------------------------------------------------------------
// Redirects and content types
// ---------------------------------------------------------------------------

/// A TCP listener on loopback that a test can ask, without waiting, whether
/// anyone connected to it.
struct Tripwire {
    listener: StdTcpListener,
}

impl Tripwire {
    fn start() -> Self {
        let listener = StdTcpListener::bind("127.0.0.1:0").unwrap();
        listener.set_nonblocking(true).unwrap();
        Self { listener }
    }

    fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.listener.local_addr().unwrap())
    }

    fn assert_untouched(&self) {
        match self.listener.accept() {
            Err(error) if error.kind() == io::ErrorKind::WouldBlock => {}
            Ok((_, peer)) => panic!("a redirect was followed ({peer})"),
            Err(error) => panic!("listener failed: {error}"),
        }
    }
}

#[tokio::test]
async fn redirect_to_another_host_is_not_followed_at_cold_start() {
    // The redirect target is another origin on loopback; it must see no
    // connection, whether it would serve keys or not.
    let elsewhere = Tripwire::start();
    let target = elsewhere.url("/api/custom-apps/v1/jwks/org-test");
    cold_start_against("redirect", |_| Fault::Redirect(target)).await;
    cold_start_against("redirect to https", |_| {
        Fault::Redirect("https://attacker.example/jwks".to_owned())
    })
    .await;
    elsewhere.assert_untouched();
}

#[tokio::test]
async fn redirect_to_another_host_is_not_followed_at_refresh() {
    let elsewhere = Tripwire::start();
    refresh_against("redirect", |_| Fault::Redirect(elsewhere.url("/jwks"))).await;
    elsewhere.assert_untouched();
}

#[tokio::test]
async fn jwks_served_as_text_html_or_any_other_content_type_is_accepted() {
    // Decision: the content type is not checked. Issuers serve key sets as
    // application/json, application/jwk-set+json, text/plain or worse; a body
    // that parses as a JWKS is one, and one that does not is refused whatever
    // its type (see the garbage tests).
    for content_type in [
        "text/html",
        "text/html; charset=utf-8",
        "text/plain",
        "application/octet-stream",
        "application/jwk-set+json",
        "",
    ] {
        let h = Harness::start(|b| b).await;
        h.issuer.fail(Fault::ContentType(content_type.to_owned()));
        assert_served(&h.get(&h.valid()).await, content_type);
        h.get(&h.unknown_kid())
            .await
            .assert_invalid_token(UNKNOWN_KEY);
        assert_eq!(h.fetches(), 1, "{content_type}");
    }
}

// ---------------------------------------------------------------------------
// Keys that must not be used
// ---------------------------------------------------------------------------

/// The issuer's real key with `member` set to `value`.
fn real_key_with(issuer: &MockIssuer, member: &str, value: Value) -> Value {
    let mut jwk = issuer.public_jwk();
    jwk[member] = value;
    jwk
}

/// An RSA JWK with a (made-up) 1024-bit modulus.
fn weak_rsa_jwk(kid: &str) -> Value {
    let mut modulus = vec![0xC5u8; 128];
    modulus[127] |= 1;
    json!({
        "kty": "RSA",
        "use": "sig",
        "alg": "RS256",
        "kid": kid,
        "n": URL_SAFE_NO_PAD.encode(modulus),
        "e": "AQAB",
    })
}

/// The public JWK of another RSA-2048 key.
fn other_rsa_jwk(kid: &str) -> Value {
    let key = RsaKeyPair::generate(KeySize::Rsa2048).unwrap();
    let public = key.public_key();
    json!({
        "kty": "RSA",
        "use": "sig",
        "alg": "RS256",
        "kid": kid,
        "n": URL_SAFE_NO_PAD.encode(public.modulus().big_endian_without_leading_zero()),
        "e": URL_SAFE_NO_PAD.encode(public.exponent().big_endian_without_leading_zero()),
    })
}

/// A made-up private exponent.
fn private_d() -> Value {
    json!(URL_SAFE_NO_PAD.encode([0x5Au8; 256]))
}

#[tokio::test]
async fn key_with_private_members_is_never_used() {
    // An issuer that leaks its private key: the key is compromised, so it is
    // not used at all, not even for verifying its own tokens.
    hostile_entries_beside_a_good_key_are_never_used("private members", |issuer| {
        vec![
            real_key_with(issuer, "d", private_d()),
            real_key_with(issuer, "p", private_d()),
        ]
    })
    .await;

    // As the only key, under the kid every token names: no usable key.
    let leaked: FaultFor =
        |issuer| Fault::Body(jwks_body(&[real_key_with(issuer, "d", private_d())]));
    answered_without_usable_keys("only a leaked key", leaked).await;
}

#[tokio::test]
async fn rsa_key_of_1024_bits_is_never_used() {
    hostile_entries_beside_a_good_key_are_never_used("1024-bit key", |_| {
        vec![weak_rsa_jwk("hostile")]
    })
    .await;
    let only_weak: FaultFor = |_| Fault::Body(jwks_body(&[weak_rsa_jwk("key-1")]));
    answered_without_usable_keys("only a 1024-bit key", only_weak).await;
}

#[tokio::test]
async fn different_keys_under_one_kid_are_never_used() {
    // Two keys named alike: which one a verifier picks decides whether a
    // token signed by the other gets in. Neither is used.
    hostile_entries_beside_a_good_key_are_never_used("duplicate kids", |issuer| {
        vec![issuer.public_jwk(), other_rsa_jwk("hostile")]
    })
    .await;

    // The kid every token names, twice: nothing usable.
    let twice: FaultFor =
        |issuer| Fault::Body(jwks_body(&[issuer.public_jwk(), other_rsa_jwk("key-1")]));
    answered_without_usable_keys("duplicate kids", twice).await;

    // The same key listed twice under its kid is no conflict.
    let h = Harness::start(|b| b).await;
    let same = jwks_body(&[h.issuer.public_jwk(), h.issuer.public_jwk()]);
    h.issuer.fail(Fault::Body(same));
    assert_served(&h.get(&h.valid()).await, "the same key twice");
    assert_eq!(h.fetches(), 1);
}

#[tokio::test]
async fn key_for_encryption_is_never_used() {
    // A key published for encryption ("use": "enc", or key_ops without
    // "verify") does not verify signatures, not even its issuer's own.
    hostile_entries_beside_a_good_key_are_never_used("use enc", |issuer| {
        vec![
            real_key_with(issuer, "use", json!("enc")),
            real_key_with(issuer, "key_ops", json!(["encrypt", "wrapKey"])),
        ]
    })
    .await;
    let only_enc: FaultFor =
        |issuer| Fault::Body(jwks_body(&[real_key_with(issuer, "use", json!("enc"))]));
    answered_without_usable_keys("only an encryption key", only_enc).await;
}

#[tokio::test]
async fn key_dropped_from_the_jwks_is_refused_after_the_refresh() {
    let h = Harness::start(|b| b).await;
    let old_jwk = h.issuer.public_jwk();
    let old_key = h.token();
    let remembered = old_key.clone().sub("remembered").sign();
    assert_eq!(h.get(&remembered).await.status, 200);
    assert_eq!(verified_token_count(&h.auth), 1);

    // The issuer rotates and drops the key in use.
    h.issuer.rotate();
    h.issuer.unpublish("key-1");
    let new_key = h.token();

    // Until the refresh, the cached key set still holds key-1.
    h.clock.advance(TTL - SECOND);
    assert_served(&h.get(&old_key.clone().sign()).await, "before the refresh");
    assert_eq!(h.fetches(), 1);

    // The refresh replaces the key set (the request that triggers it is
    // answered from the old set).
    h.clock.advance(2 * SECOND);
    let generation = key_generation(&h.auth);
    assert_eq!(h.get(&old_key.clone().sign()).await.status, 200);
    h.settle_after_new_key_set(generation).await;
    assert_eq!(h.fetches(), 2);

    // From now on key-1 is refused, a token remembered from before included;
    // key-2 serves; nothing more is fetched inside the cooldown.
    for token in [old_key.clone().sign(), remembered.clone()] {
        h.get(&token).await.assert_invalid_token(UNKNOWN_KEY);
    }
    assert_served(&h.get(&new_key.clone().sign()).await, "new key");
    assert_eq!(h.fetches(), 2);

    // Past the cooldown the dropped kid may ask once more; still refused.
    h.clock.advance(COOLDOWN + SECOND);
    for _ in 0..3 {
        h.get(&old_key.clone().sign())
            .await
            .assert_invalid_token(UNKNOWN_KEY);
    }
    assert_eq!(h.fetches(), 3);

    // The issuer publishes key-1 again: after the cooldown it serves again.
    h.issuer
        .fail(Fault::Body(jwks_body(&[old_jwk, h.issuer.public_jwk()])));
    h.clock.advance(COOLDOWN + SECOND);
    assert_served(&h.get(&old_key.sign()).await, "republished");
    assert_eq!(h.get(&remembered).await.status, 200);
    assert_served(&h.get(&new_key.sign()).await, "new key");
    assert_eq!(h.fetches(), 4);
}

// ---------------------------------------------------------------------------
// What the operator is told
// ---------------------------------------------------------------------------

#[tokio::test]
async fn preload_says_why_the_keys_could_not_be_loaded() {
    // Regression: a drip or a hang used to be reported as "error decoding
    // response body" (or "error sending request") whenever the HTTP client's
    // timeout fired before the one around the whole fetch, and a truncated
    // body gave no cause at all. The same text goes to the warning log.
    let issuer = MockIssuer::start().await;
    let auth = issuer.auth().jwks_timeout(TIMEOUT).build().unwrap();
    let reason = |error: meingpt_auth::KeysError| {
        let text = error.to_string();
        let prefix = format!(
            "cannot load signing keys from {} (set by MEINGPT_ORG_ID / `organization`): ",
            issuer.jwks_url()
        );
        text.strip_prefix(&prefix)
            .unwrap_or_else(|| panic!("{text}"))
            .to_owned()
    };

    for fault in [Fault::Slow(SECOND), Fault::Hang] {
        issuer.fail(fault.clone());
        let started = Instant::now();
        let error = tokio::time::timeout(TIMEOUT + SLACK, auth.preload())
            .await
            .expect("preload gives up at the timeout")
            .unwrap_err();
        assert!(started.elapsed() >= TIMEOUT - Duration::from_millis(50));
        assert_eq!(
            reason(error),
            "no complete answer within 300ms",
            "{fault:?}"
        );
    }

    issuer.fail(Fault::Truncated);
    let truncated = reason(auth.preload().await.unwrap_err());
    assert!(
        truncated.starts_with("error decoding response body: ") && truncated.len() > 40,
        "no cause given: {truncated}"
    );

    issuer.fail(Fault::Status(500));
    assert_eq!(
        reason(auth.preload().await.unwrap_err()),
        "the issuer answered HTTP 500"
    );
    issuer.recover();
    auth.preload().await.unwrap();
    assert_eq!(issuer.fetch_count(), 5);
}

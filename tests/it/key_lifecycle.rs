//! The key lifecycle: the issuer's word is final. A well-formed JWKS
//! replaces the cached keys whatever it holds; a remembered verdict lives
//! exactly as long as the very key that gave it; each key verifies one
//! algorithm; before a signature has verified, no refusal tells which keys
//! or organizations a server knows; and the verified-token cache stays
//! within its byte budget.
//!
//! Everything runs over real HTTP on loopback: a `MockIssuer` serving the
//! JWKS (and its fetch counts), a `MockClock` for time.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::Duration;

use crate::common::answers::NOT_VERIFIED;
use crate::common::{app, everything_seen, get_with_token, random_kid, serve};
use meingpt_auth::testing::{
    Fault, MockClock, MockIssuer, TokenBuilder, key_generation, verified_token_count,
};
use meingpt_auth::{Algorithm, Clock, MeinGptAuth};
use serde_json::{Value, json};

const SECOND: Duration = Duration::from_secs(1);
const TTL: Duration = Duration::from_secs(60);

/// Polls `done` every 10 ms for at most 3 s.
async fn eventually(what: &str, mut done: impl FnMut() -> bool) {
    for _ in 0..300 {
        if done() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("{what} did not happen within 3 s");
}

/// A JWKS the issuer serves, made from its keys.
type Document = fn(&MockIssuer) -> String;

fn jwks_body(keys: &[Value]) -> String {
    json!({ "keys": keys }).to_string()
}

/// The issuer's current key as published, with `member` set to `value`
/// (or removed when `value` is null).
fn current_key_with(issuer: &MockIssuer, member: &str, value: Value) -> Value {
    let mut jwk = issuer.public_jwk();
    if value.is_null() {
        jwk.as_object_mut().unwrap().remove(member);
    } else {
        jwk[member] = value;
    }
    jwk
}

fn token_at(builder: TokenBuilder, clock: &MockClock) -> TokenBuilder {
    builder.expires_at(clock.now().as_secs() as i64 + 3600)
}

// ---------------------------------------------------------------------------
// 1. A well-formed JWKS is an answer, even without a usable key
// ---------------------------------------------------------------------------

#[tokio::test]
async fn a_jwks_without_usable_keys_withdraws_the_old_keys_for_fresh_and_remembered_tokens() {
    let withdrawn: [(&str, Document); 4] = [
        ("no keys at all", |_| jwks_body(&[])),
        ("the key re-marked for encryption", |issuer| {
            jwks_body(&[current_key_with(issuer, "use", json!("enc"))])
        }),
        ("key_ops without verify", |issuer| {
            jwks_body(&[current_key_with(issuer, "key_ops", json!(["sign"]))])
        }),
        ("only a key nobody signs with", |_| {
            jwks_body(&[json!({"kty": "EC", "crv": "P-256", "kid": "other",
                "x": "f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVEU",
                "y": "x_FEzRu9m36HLN_tue659LNpXW6pCyStikYjKIWI5a0"})])
        }),
    ];
    for (what, document) in withdrawn {
        let (issuer, clock, auth, base) = started().await;
        let admin = token_at(issuer.demo_admin(), &clock).sign();
        let remembered = get_with_token(&format!("{base}/admin"), &admin).await;
        assert_eq!(remembered.status, 200, "{what}: {}", remembered.body);

        // The issuer withdraws its key: the next refresh brings the answer.
        issuer.fail(Fault::Body(document(&issuer)));
        clock.advance(TTL + SECOND);
        let generation = key_generation(&auth);
        let _ = get_with_token(&format!("{base}/admin"), &admin).await;
        eventually("a new key set", || key_generation(&auth) != generation).await;
        assert_eq!(issuer.fetch_count(), 2, "{what}");

        get_with_token(&format!("{base}/admin"), &admin)
            .await
            .assert_invalid_token(NOT_VERIFIED);
        let fresh = token_at(issuer.demo_admin(), &clock).sign();
        get_with_token(&format!("{base}/admin"), &fresh)
            .await
            .assert_invalid_token(NOT_VERIFIED);
    }
}

#[tokio::test]
async fn a_cold_start_against_a_jwks_without_usable_keys_answers_401_not_503() {
    let issuer = MockIssuer::start().await;
    let auth = issuer.auth().build().unwrap();
    let base = serve(app(&auth)).await;
    issuer.fail(Fault::Body(jwks_body(&[])));

    get_with_token(&format!("{base}/me"), &issuer.token().sign())
        .await
        .assert_invalid_token(NOT_VERIFIED);
    // Keys are loaded (there are none): preload has nothing to report.
    assert!(auth.preload().await.is_ok());
    assert_eq!(issuer.fetch_count(), 1);
}

// ---------------------------------------------------------------------------
// 2. A remembered verdict is tied to the exact key that gave it
// ---------------------------------------------------------------------------

#[tokio::test]
async fn a_remembered_token_is_refused_once_its_key_is_narrowed_to_another_algorithm() {
    let issuer = MockIssuer::start().await;
    let clock = MockClock::new();
    let auth = MeinGptAuth::oidc(issuer.issuer())
        .audience("api")
        .algorithms([Algorithm::RS256, Algorithm::RS512])
        .clock(clock.clone())
        .jwks_ttl(TTL)
        .build()
        .unwrap();
    let base = serve(app(&auth)).await;
    let token = token_at(issuer.token().audience("api"), &clock).sign();
    assert_eq!(
        get_with_token(&format!("{base}/me"), &token).await.status,
        200
    );
    assert_eq!(verified_token_count(&auth), 1);

    // Same kid, same material, now pinned to RS512.
    issuer.fail(Fault::Body(jwks_body(&[current_key_with(
        &issuer,
        "alg",
        json!("RS512"),
    )])));
    clock.advance(TTL + SECOND);
    let generation = key_generation(&auth);
    let _ = get_with_token(&format!("{base}/me"), &token).await;
    eventually("a new key set", || key_generation(&auth) != generation).await;

    get_with_token(&format!("{base}/me"), &token)
        .await
        .assert_invalid_token(NOT_VERIFIED);
    let rs512 = token_at(issuer.token().audience("api"), &clock).sign_with(Algorithm::RS512);
    assert_eq!(
        get_with_token(&format!("{base}/me"), &rs512).await.status,
        200
    );
}

#[tokio::test]
async fn a_refresh_that_changes_nothing_keeps_remembered_verdicts() {
    let (issuer, clock, auth, base) = started().await;
    let token = token_at(issuer.token(), &clock).sign();
    assert_eq!(
        get_with_token(&format!("{base}/me"), &token).await.status,
        200
    );
    // The same key, its members in another order and an unrelated member
    // added: the very same key with the same permissions.
    let mut same = issuer.public_jwk();
    same["x5t"] = json!("ignored");
    issuer.fail(Fault::Body(jwks_body(&[same])));
    clock.advance(TTL + SECOND);
    let generation = key_generation(&auth);
    let _ = get_with_token(&format!("{base}/me"), &token).await;
    eventually("a new key set", || key_generation(&auth) != generation).await;
    assert_eq!(
        get_with_token(&format!("{base}/me"), &token).await.status,
        200
    );
    assert_eq!(verified_token_count(&auth), 1);
}

// ---------------------------------------------------------------------------
// 3. No ordering of refresh and verification lets a removed key back in
// ---------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn no_token_signed_by_a_removed_key_is_accepted_once_the_removal_is_visible() {
    let issuer = MockIssuer::start().await;
    // A TTL of zero: every request starts a background refresh, so fetches
    // run back to back, concurrently with verification.
    let auth = issuer.auth().jwks_ttl(Duration::ZERO).build().unwrap();
    auth.preload().await.unwrap();
    let removed_kid = issuer.current_kid();
    let tokens: Arc<Vec<String>> = Arc::new(
        (0..16)
            .map(|n| issuer.token().sub(&format!("user-{n}")).sign())
            .collect(),
    );
    issuer.rotate(); // a second key stays published throughout

    // Even phases: the key is published (or being published again); odd
    // phases: its removal is visible (a fetch that started after the
    // removal has replaced the key set).
    let phase = Arc::new(AtomicU64::new(0));
    // Tells the verifiers to stop.
    const DONE: u64 = u64::MAX;
    let accepted_after_removal = Arc::new(AtomicUsize::new(0));
    let refused_after_removal = Arc::new(AtomicUsize::new(0));
    let accepted_while_published = Arc::new(AtomicUsize::new(0));
    let verifiers: Vec<_> = (0..6)
        .map(|worker| {
            let auth = auth.clone();
            let tokens = tokens.clone();
            let phase = phase.clone();
            let (bad, refused, good) = (
                accepted_after_removal.clone(),
                refused_after_removal.clone(),
                accepted_while_published.clone(),
            );
            tokio::spawn(async move {
                let mut n = worker;
                loop {
                    // One reading both stops the loop and names the phase:
                    // `DONE` is odd, so read apart from the stop check it
                    // would count as a phase in which the key is removed.
                    let before = phase.load(Ordering::SeqCst);
                    if before == DONE {
                        break;
                    }
                    let outcome = auth.verify(&tokens[n % tokens.len()]).await;
                    n += 1;
                    if phase.load(Ordering::SeqCst) != before {
                        continue; // straddled a phase change: no claim
                    }
                    match (before % 2 == 1, outcome.is_ok()) {
                        (true, true) => bad.fetch_add(1, Ordering::SeqCst),
                        (true, false) => refused.fetch_add(1, Ordering::SeqCst),
                        (false, true) => good.fetch_add(1, Ordering::SeqCst),
                        (false, false) => 0,
                    };
                    tokio::task::yield_now().await;
                }
            })
        })
        .collect();

    // Waits until two more key sets have been fetched: the second started
    // after the first ended, so after whatever changed before the call.
    let two_fetches_later = |auth: &MeinGptAuth| {
        let auth = auth.clone();
        async move {
            let start = key_generation(&auth).unwrap_or(0);
            eventually("two fetches", || {
                // Requests start refreshes; keep them coming.
                key_generation(&auth).unwrap_or(0) >= start + 2
            })
            .await;
        }
    };
    for _ in 0..15 {
        issuer.unpublish(&removed_kid);
        two_fetches_later(&auth).await;
        phase.fetch_add(1, Ordering::SeqCst); // odd: removal visible
        tokio::time::sleep(Duration::from_millis(20)).await;
        phase.fetch_add(1, Ordering::SeqCst); // even: publishing again
        issuer.publish(&removed_kid);
        two_fetches_later(&auth).await;
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    phase.store(DONE, Ordering::SeqCst);
    for verifier in verifiers {
        verifier.await.unwrap();
    }

    assert_eq!(accepted_after_removal.load(Ordering::SeqCst), 0);
    assert!(refused_after_removal.load(Ordering::SeqCst) > 0);
    assert!(accepted_while_published.load(Ordering::SeqCst) > 0);
}

// ---------------------------------------------------------------------------
// 4. One key, one algorithm
// ---------------------------------------------------------------------------

#[tokio::test]
async fn an_oidc_key_without_alg_verifies_rs256_only() {
    let issuer = MockIssuer::start().await;
    issuer.set_discovery(json!({
        "issuer": issuer.issuer(),
        "jwks_uri": issuer.jwks_url(),
        "id_token_signing_alg_values_supported": ["RS256", "RS512", "PS256"],
    }));
    issuer.fail(Fault::Body(jwks_body(&[current_key_with(
        &issuer,
        "alg",
        Value::Null,
    )])));
    let auth = MeinGptAuth::oidc(issuer.issuer())
        .audience("api")
        .build()
        .unwrap();
    let base = serve(app(&auth)).await;

    let rs256 = issuer.token().audience("api").sign();
    assert_eq!(
        get_with_token(&format!("{base}/me"), &rs256).await.status,
        200
    );
    for alg in [Algorithm::RS512, Algorithm::PS256] {
        let token = issuer.token().audience("api").sign_with(alg);
        get_with_token(&format!("{base}/me"), &token)
            .await
            .assert_invalid_token(NOT_VERIFIED);
    }
    assert_eq!(issuer.fetch_count(), 1);
}

#[tokio::test]
async fn an_rsa_key_without_alg_verifies_the_only_configured_rsa_algorithm() {
    let issuer = MockIssuer::start().await;
    issuer.fail(Fault::Body(jwks_body(&[current_key_with(
        &issuer,
        "alg",
        Value::Null,
    )])));
    let auth = MeinGptAuth::oidc(issuer.issuer())
        .audience("api")
        .algorithms([Algorithm::PS256, Algorithm::ES256])
        .build()
        .unwrap();
    let base = serve(app(&auth)).await;

    let ps256 = issuer.token().audience("api").sign_with(Algorithm::PS256);
    assert_eq!(
        get_with_token(&format!("{base}/me"), &ps256).await.status,
        200
    );
}

// ---------------------------------------------------------------------------
// 8. No oracle for keys or organizations
// ---------------------------------------------------------------------------

/// A token with its signature replaced by another token's.
fn with_foreign_signature(token: &str, donor: &str) -> String {
    let (signed, _) = token.rsplit_once('.').unwrap();
    let (_, signature) = donor.rsplit_once('.').unwrap();
    format!("{signed}.{signature}")
}

#[tokio::test]
async fn unknown_key_bad_signature_and_unserved_audience_look_identical_before_verification() {
    let issuer = MockIssuer::for_organizations(&["org-a", "org-b"]).await;
    let auth = MeinGptAuth::builder()
        .issuer(issuer.issuer())
        .organizations(["org-a", "org-b"])
        .build()
        .unwrap();
    let me = format!("{}/me", serve(app(&auth)).await);
    let donor = issuer.token_for("org-a").sub("someone-else").sign();

    let bad_signature = with_foreign_signature(&issuer.token_for("org-a").sign(), &donor);
    let unknown_key = issuer.token_for("org-b").kid(&random_kid()).sign();
    let other_orgs_key = issuer.token_for("org-a").audience("org-b").sign();
    let unserved =
        with_foreign_signature(&issuer.token_for("org-a").audience("org-c").sign(), &donor);

    let reference = everything_seen(&me, &bad_signature).await;
    assert_eq!(reference.0, 401);
    for (what, token) in [
        ("unknown key", &unknown_key),
        ("another organization's key", &other_orgs_key),
        ("audience not served", &unserved),
    ] {
        assert_eq!(everything_seen(&me, token).await, reference, "{what}");
    }
    let seen = get_with_token(&me, &unserved).await;
    seen.assert_invalid_token(NOT_VERIFIED);
}

#[tokio::test]
async fn a_token_for_two_organizations_verifies_with_the_key_of_either() {
    let issuer = MockIssuer::for_organizations(&["org-a", "org-b"]).await;
    let auth = MeinGptAuth::builder()
        .issuer(issuer.issuer())
        .organizations(["org-a", "org-b"])
        .build()
        .unwrap();
    let me = format!("{}/me", serve(app(&auth)).await);

    let by_b = issuer
        .token_for("org-b")
        .audience(json!(["org-a", "org-b"]))
        .sign();
    let seen = get_with_token(&me, &by_b).await;
    assert_eq!(seen.status, 200, "{}", seen.body);
    assert_eq!(seen.json()["organization_id"], "org-b");

    let by_a = issuer
        .token_for("org-a")
        .audience(json!(["org-c", "org-b", "org-a"]))
        .sign();
    let seen = get_with_token(&me, &by_a).await;
    assert_eq!(seen.status, 200, "{}", seen.body);
    assert_eq!(seen.json()["organization_id"], "org-a");
}

// ---------------------------------------------------------------------------
// 11. The verified-token cache is bounded in bytes
// ---------------------------------------------------------------------------

#[tokio::test]
async fn the_verified_token_cache_stays_within_its_byte_budget() {
    let issuer = MockIssuer::start().await;
    let auth = issuer
        .auth()
        .max_token_size(64 * 1024)
        .verified_token_cache_bytes(1024 * 1024)
        .build()
        .unwrap();
    let big = |n: usize| {
        let mut builder = issuer.token().sub(&format!("user-{n}"));
        for team in 0..510 {
            builder = builder.team(&format!("team-{team:04}-{n}"), &format!("Team {team}"));
        }
        builder.sign()
    };
    let first = big(0);
    assert!(first.len() > 15_000, "{}", first.len());
    for n in 0..40 {
        let user = auth.verify(&big(n)).await.unwrap();
        assert_eq!(user.teams().len(), 510);
    }
    // Each entry holds its 15 KB token and its claims: far fewer than 40
    // fit into 1 MiB, and at least one does.
    let count = verified_token_count(&auth);
    assert!((1..=30).contains(&count), "{count} entries");

    let claims_twice = auth.verify(&first).await.unwrap();
    assert_eq!(
        claims_twice.claims()["teams"].as_array().unwrap().len(),
        510
    );
}

/// A mock issuer, a mock clock, an authenticator with the key TTL `TTL` on
/// that clock, and the app behind it; the app's base URL last.
async fn started() -> (MockIssuer, MockClock, MeinGptAuth, String) {
    let issuer = MockIssuer::start().await;
    let clock = MockClock::new();
    let auth = issuer
        .auth()
        .clock(clock.clone())
        .jwks_ttl(TTL)
        .build()
        .unwrap();
    let base = serve(app(&auth)).await;
    (issuer, clock, auth, base)
}

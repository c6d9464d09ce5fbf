//! Verification end to end, apart from attacks: expiry and leeway, required
//! claims, meinGPT's claim types, key selection, size settings and logging,
//! through a real server on loopback, with exactly what a client sees —
//! status, challenge, JSON body — and how often the issuer's key set was
//! fetched. Forged, confused and hostile tokens are catalogued in
//! `tests/it/attacks.rs`.

use std::io;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::common::answers::{EXPIRED, INVALID_CLAIM, MISSING_CLAIM, NOT_YET_VALID, TOO_LARGE};
use crate::common::{CapturedLog, Seen, app, get_with_token, serve};
use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::rsa::KeySize;
use aws_lc_rs::signature::{self, RsaKeyPair};
use axum::body::Body;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use http::{Request, StatusCode};
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use meingpt_auth::MeinGptAuth;
use meingpt_auth::testing::MockIssuer;
use serde_json::{Map, Value, json};
use tower::ServiceExt;

// ---------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------

/// Serves the quickstart routes behind `auth` on loopback; returns the URL
/// of `/me`.
async fn serve_me(auth: &MeinGptAuth) -> String {
    format!("{}/me", serve(app(auth)).await)
}

/// Starts an issuer and the quickstart app with the default configuration.
async fn start() -> (MockIssuer, String) {
    let issuer = MockIssuer::start().await;
    let me = serve_me(&issuer.auth().build().unwrap()).await;
    (issuer, me)
}

/// Sends `token` and asserts a `401 invalid_token` with `description` that
/// echoes nothing of the token.
async fn assert_refused(url: &str, token: &str, description: &str) -> Seen {
    let seen = get_with_token(url, token).await;
    seen.assert_invalid_token(description);
    assert_not_echoed(&seen, token);
    seen
}

/// Neither the token nor any long piece of it appears in what the client sees.
fn assert_not_echoed(seen: &Seen, token: &str) {
    let challenge = seen.www_authenticate.as_deref().unwrap_or_default();
    let pieces = std::iter::once(token).chain(token.split('.').filter(|piece| piece.len() >= 16));
    for piece in pieces {
        assert!(
            !seen.body.contains(piece),
            "body echoes the token: {}",
            seen.body
        );
        assert!(
            !challenge.contains(piece),
            "challenge echoes the token: {challenge}"
        );
    }
}

/// A fresh, good token still gets in: bad input did not take the server down.
async fn assert_still_serves_good_tokens(issuer: &MockIssuer, url: &str) {
    let seen = get_with_token(url, &issuer.token().sub("after-attack").sign()).await;
    assert_eq!(seen.status, 200, "body: {}", seen.body);
    assert_eq!(seen.json()["sub"], "after-attack");
}

fn b64(bytes: impl AsRef<[u8]>) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

fn now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

/// `base64url(header).base64url(claims)`.
fn signing_input(header: &Value, claims: &Value) -> String {
    format!("{}.{}", b64(header.to_string()), b64(claims.to_string()))
}

/// An attacker's own RSA-2048 key.
fn attacker_rsa_key() -> RsaKeyPair {
    RsaKeyPair::generate(KeySize::Rsa2048).unwrap()
}

/// A compact JWS over `header` and `claims`, signed RS256 with `key`.
fn rs256_signed_by(key: &RsaKeyPair, header: &Value, claims: &Value) -> String {
    let input = signing_input(header, claims);
    let mut signature = vec![0; key.public_modulus_len()];
    key.sign(
        &signature::RSA_PKCS1_SHA256,
        &SystemRandom::new(),
        input.as_bytes(),
        &mut signature,
    )
    .unwrap();
    format!("{input}.{}", b64(signature))
}

/// The three segments of a compact token.
fn segments(token: &str) -> [String; 3] {
    let parts: Vec<&str> = token.split('.').collect();
    assert_eq!(parts.len(), 3, "not a compact JWS: {token}");
    [parts[0].into(), parts[1].into(), parts[2].into()]
}

// ---------------------------------------------------------------------------
// Audience
// ---------------------------------------------------------------------------

#[tokio::test]
async fn audience_array_that_contains_the_organization_is_accepted() {
    // Attack (negative control): a multi-audience token must not be refused wholesale.
    let (issuer, me) = start().await;

    for aud in [json!(["org-test"]), json!(["org-other", "org-test"])] {
        let token = issuer.token().audience(aud.clone()).sign();
        let seen = get_with_token(&me, &token).await;
        assert_eq!(seen.status, 200, "{aud}: {}", seen.body);
        assert_eq!(seen.json()["organization_id"], "org-test");
    }
    assert_eq!(issuer.fetch_count(), 1);
}

// ---------------------------------------------------------------------------
// Time
// ---------------------------------------------------------------------------

#[tokio::test]
async fn token_expired_beyond_the_default_leeway_is_rejected() {
    // Attack: replay of an old, stolen token.
    let (issuer, me) = start().await;
    for exp in [now() - 60, now() - 3600, 0, -1, i64::MIN] {
        let token = issuer
            .token()
            .issued_at(now() - 7200)
            .expires_at(exp)
            .sign();
        assert_refused(&me, &token, EXPIRED).await;
    }
    assert_eq!(issuer.fetch_count(), 1);
    assert_still_serves_good_tokens(&issuer, &me).await;
}

#[tokio::test]
async fn token_expired_ten_seconds_ago_is_still_accepted_thanks_to_the_leeway() {
    // Attack (negative control): ordinary clock skew must not lock users out.
    let (issuer, me) = start().await;
    let token = issuer.token().expires_at(now() - 10).sign();
    let seen = get_with_token(&me, &token).await;
    assert_eq!(seen.status, 200, "{}", seen.body);
    assert_eq!(issuer.fetch_count(), 1);
}

#[tokio::test]
async fn token_used_before_its_nbf_is_rejected() {
    // Attack: pre-issued token used before its validity window opens.
    let (issuer, me) = start().await;
    let token = issuer.token().not_before(now() + 120).sign();
    assert_refused(&me, &token, NOT_YET_VALID).await;
    let token = issuer.token().not_before(i64::MAX).sign();
    assert_refused(&me, &token, NOT_YET_VALID).await;

    let within_leeway = issuer.token().not_before(now() + 10).sign();
    assert_eq!(get_with_token(&me, &within_leeway).await.status, 200);
    assert_eq!(issuer.fetch_count(), 1);
}

#[tokio::test]
async fn token_issued_in_the_future_is_rejected() {
    // Attack: a token minted with a forward-dated iat (compromised or skewed minting).
    let (issuer, me) = start().await;
    let token = issuer.token().issued_at(now() + 120).sign();
    assert_refused(&me, &token, NOT_YET_VALID).await;

    let within_leeway = issuer.token().issued_at(now() + 10).sign();
    assert_eq!(get_with_token(&me, &within_leeway).await.status, 200);
    assert_eq!(issuer.fetch_count(), 1);
}

#[tokio::test]
async fn leeway_is_configurable_on_the_builder() {
    // Attack: replay just after expiry — a deployment may tighten (or loosen) the skew window.
    let issuer = MockIssuer::start().await;
    let strict = serve_me(&issuer.auth().leeway(Duration::ZERO).build().unwrap()).await;
    let lenient = serve_me(
        &issuer
            .auth()
            .leeway(Duration::from_secs(120))
            .build()
            .unwrap(),
    )
    .await;

    let expired_10s = issuer.token().expires_at(now() - 10).sign();
    let nbf_in_10s = issuer.token().not_before(now() + 10).sign();
    let iat_in_10s = issuer.token().issued_at(now() + 10).sign();
    assert_refused(&strict, &expired_10s, EXPIRED).await;
    assert_refused(&strict, &nbf_in_10s, NOT_YET_VALID).await;
    assert_refused(&strict, &iat_in_10s, NOT_YET_VALID).await;
    assert_still_serves_good_tokens(&issuer, &strict).await;

    let expired_90s = issuer.token().expires_at(now() - 90).sign();
    let iat_in_90s = issuer.token().issued_at(now() + 90).sign();
    for token in [&expired_90s, &iat_in_90s, &expired_10s] {
        assert_eq!(get_with_token(&lenient, token).await.status, 200);
    }
    let expired_300s = issuer.token().expires_at(now() - 300).sign();
    assert_refused(&lenient, &expired_300s, EXPIRED).await;
    assert_eq!(issuer.fetch_count(), 2, "one fetch per authenticator");

    assert!(
        issuer
            .auth()
            .leeway(Duration::from_secs(301))
            .build()
            .is_err(),
        "a leeway above 5 minutes is a configuration error"
    );
}

// ---------------------------------------------------------------------------
// Required claims and meinGPT's claim types
// ---------------------------------------------------------------------------

#[tokio::test]
async fn token_without_exp_or_sub_lacks_a_required_claim() {
    // Attack: a never-expiring token, or one that names no user.
    let (issuer, me) = start().await;
    for token in [
        issuer.token().without("exp").sign(),
        issuer.token().without("sub").sign(),
        issuer.token().sub("").sign(),
    ] {
        assert_refused(&me, &token, MISSING_CLAIM).await;
    }
    assert_eq!(issuer.fetch_count(), 1);
    assert_still_serves_good_tokens(&issuer, &me).await;
}

#[tokio::test]
async fn unknown_role_is_accepted_but_wrongly_typed_meingpt_claims_are_not() {
    // Attack: type confusion on meinGPT claims (role as a number or an array of
    // numbers, teams as a string, …). An array of role names is a valid role
    // claim (other platforms send roles that way).
    let (issuer, me) = start().await;

    let viewer = get_with_token(&me, &issuer.token().role("viewer").sign()).await;
    assert_eq!(viewer.status, 200, "{}", viewer.body);
    assert_eq!(viewer.json()["role"], "viewer");

    for (name, value) in [
        ("role", json!([1])),
        ("role", json!({"name": "admin"})),
        ("role", json!(1)),
        ("teams", json!("Engineering")),
        ("teams", json!({"id": "t1", "name": "Engineering"})),
        ("teams", json!([{"id": 1, "name": "Engineering"}])),
        ("teams", json!([{"id": "t1"}])),
        ("teams", json!(["Engineering"])),
        ("email", json!(5)),
        ("email", json!(["ada@example.com"])),
        ("username", json!(false)),
        ("organizationName", json!({})),
        ("jti", json!(7)),
    ] {
        let token = issuer.token().claim(name, value).sign();
        assert_refused(&me, &token, INVALID_CLAIM).await;
    }

    assert_eq!(issuer.fetch_count(), 1);
    assert_still_serves_good_tokens(&issuer, &me).await;
}

// ---------------------------------------------------------------------------
// Key selection and size
// ---------------------------------------------------------------------------

#[tokio::test]
async fn token_without_kid_is_accepted_while_the_issuer_publishes_one_key() {
    // Attack (negative control): kid-less tokens are fine when the choice is unambiguous.
    let (issuer, me) = start().await;
    let token = issuer.token().without_header("kid").sub("no-kid").sign();
    let seen = get_with_token(&me, &token).await;
    assert_eq!(seen.status, 200, "{}", seen.body);
    assert_eq!(seen.json()["sub"], "no-kid");
    assert_eq!(issuer.fetch_count(), 1);
}

#[tokio::test]
async fn smaller_max_token_size_from_the_builder_is_enforced() {
    // Attack: resource exhaustion where the deployment knows its tokens are small.
    let issuer = MockIssuer::start().await;
    let me = serve_me(&issuer.auth().max_token_size(600).build().unwrap()).await;

    let full = issuer.token().sign();
    assert!(full.len() > 600, "{}", full.len());
    assert_refused(&me, &full, TOO_LARGE).await;
    assert_eq!(issuer.fetch_count(), 0);

    let mut minimal = issuer.token();
    for claim in [
        "jti",
        "email",
        "username",
        "organizationName",
        "teams",
        "role",
        "iat",
    ] {
        minimal = minimal.without(claim);
    }
    let minimal = minimal.sign();
    assert!(minimal.len() <= 600, "{}", minimal.len());
    assert_eq!(get_with_token(&me, &minimal).await.status, 200);
}

// ---------------------------------------------------------------------------
// What is logged
// ---------------------------------------------------------------------------

#[tokio::test(flavor = "current_thread")]
async fn logs_name_each_rejection_but_never_the_token_the_email_or_the_username() {
    // Attack: credential and PII leakage through logs.
    let log = CapturedLog::default();
    let writer = log.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_writer(move || writer.clone())
        .with_max_level(tracing::Level::TRACE)
        .with_ansi(false)
        .finish();
    let _guard = tracing::subscriber::set_default(subscriber);
    // `tracing` caches each callsite's interest globally. While only one
    // dispatcher exists, a callsite first hit on another test's thread (which
    // has no subscriber) is cached as "never" and our events vanish. With a
    // second, silent dispatcher alive, every callsite asks both of them.
    let _second = tracing::Dispatch::new(tracing_subscriber::fmt().with_writer(io::sink).finish());

    let issuer = MockIssuer::start().await;
    let auth = issuer.auth().build().unwrap();
    let router = app(&auth);
    let email = "grace.hopper@navy.example";
    let username = "Grace Brewster Hopper";
    let person = || issuer.token().email(email).username(username);

    let good = person().sign();
    let expired = person().expires_at(now() - 3600).sign();
    let wrong_aud = person().audience("org-other").sign();
    let (header, claims) = person().into_parts();
    let forged = rs256_signed_by(
        &attacker_rsa_key(),
        &Value::Object(header),
        &Value::Object(claims),
    );

    let mut statuses = Vec::new();
    for token in [&good, &expired, &forged, &wrong_aud] {
        let request = Request::get("/me")
            .header("x-meingpt-jwt", token.as_str())
            .body(Body::empty())
            .unwrap();
        statuses.push(router.clone().oneshot(request).await.unwrap().status());
    }
    assert_eq!(
        statuses,
        [
            StatusCode::OK,
            StatusCode::UNAUTHORIZED,
            StatusCode::UNAUTHORIZED,
            StatusCode::UNAUTHORIZED
        ]
    );
    assert_eq!(issuer.fetch_count(), 1);

    let text = log.text();
    assert!(!text.is_empty(), "nothing was logged");
    assert!(text.contains("token rejected"), "{text}");
    for reason in ["expired", "bad_signature", "wrong_audience"] {
        assert!(text.contains(reason), "no {reason} in {text}");
    }
    for token in [&good, &expired, &forged, &wrong_aud] {
        let [header, payload, signature] = segments(token);
        for secret in [token.as_str(), &header, &payload, &signature] {
            assert!(!text.contains(secret), "the log holds a token piece");
        }
    }
    for personal in [email, username, "grace.hopper", "Hopper"] {
        assert!(
            !text.contains(personal),
            "the log holds {personal:?}: {text}"
        );
    }
}

#[tokio::test]
async fn a_valid_token_verifies_with_exactly_one_crypto_backend_and_nothing_panics() {
    // Attack (robustness): jsonwebtoken 11 panics at first use with zero or two crypto backends.
    let (issuer, me) = start().await;
    let token = issuer.token().sub("crypto-ok").sign();

    let seen = get_with_token(&me, &token).await;
    assert_eq!(seen.status, 200, "{}", seen.body);
    assert_eq!(seen.json()["sub"], "crypto-ok");

    // The same through the API, and jsonwebtoken itself still works afterwards.
    let auth = issuer.auth().build().unwrap();
    assert_eq!(auth.verify(&token).await.unwrap().sub(), "crypto-ok");
    let hs = jsonwebtoken::encode(
        &Header::new(Algorithm::HS256),
        &Map::new(),
        &EncodingKey::from_secret(b"secret"),
    );
    assert!(hs.is_ok());
    assert_eq!(issuer.fetch_count(), 2);
}

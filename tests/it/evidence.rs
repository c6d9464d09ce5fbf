//! Claims SECURITY.md makes that no other module pins down: `no-store` on
//! every rejection, a future `auth_time`, JWK hygiene (RSA exponents, EC
//! curves, `oct` keys), the documented JWKS defaults, and logs that hold
//! nothing a request chose.

use std::io;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use crate::common::answers::{NOT_YET_VALID, UNKNOWN_KEY};
use crate::common::{CapturedLog, app, random_kid, serve};
use aws_lc_rs::hmac;
use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::signature::{
    ECDSA_P256_SHA256_FIXED_SIGNING, ECDSA_P384_SHA384_FIXED_SIGNING, EcdsaKeyPair,
    EcdsaSigningAlgorithm, KeyPair,
};
use axum::body::Body;
use axum::http::{Request, StatusCode};
use axum::routing::get;
use axum::{Json, Router};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use meingpt_auth::testing::{Fault, MockClock, MockIssuer, TokenBuilder};
use meingpt_auth::{Algorithm, Clock, MeinGptAuth, MeinGptUser};
use serde_json::{Value, json};
use tower::ServiceExt;

fn now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

fn b64(bytes: impl AsRef<[u8]>) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

/// What a client sees of one response, `Cache-Control` included.
#[derive(Debug)]
struct Answer {
    status: u16,
    cache_control: Option<String>,
    www_authenticate: Option<String>,
}

async fn fetch(url: &str, headers: &[(&str, &str)]) -> Answer {
    let mut request = reqwest::Client::new().get(url);
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    let response = request.send().await.unwrap();
    let header = |name: &str| {
        response
            .headers()
            .get_all(name)
            .iter()
            .map(|v| v.to_str().unwrap().to_owned())
            .reduce(|a, b| format!("{a}, {b}"))
    };
    let cache_control = header("cache-control");
    let www_authenticate = header("www-authenticate");
    Answer {
        status: response.status().as_u16(),
        cache_control,
        www_authenticate,
    }
}

/// Asserts a `401 invalid_token` with `description`.
fn assert_invalid_token(answer: &Answer, description: &str) {
    assert_eq!(answer.status, 401, "{answer:?}");
    let challenge = answer.www_authenticate.as_deref().unwrap_or_default();
    assert!(
        challenge.contains(&format!("error_description=\"{description}\"")),
        "{answer:?}"
    );
}

// ---------------------------------------------------------------------------
// Cache-Control: no-store
// ---------------------------------------------------------------------------

/// What is sent (a name, the URL, the headers) and the status expected.
type Case<'a> = (&'a str, String, Vec<(&'a str, &'a str)>, u16);

#[tokio::test]
async fn every_kind_of_rejection_says_cache_control_no_store() {
    let issuer = MockIssuer::start().await;
    let auth = issuer.auth().build().unwrap();
    let base = serve(app(&auth)).await;
    let aged = issuer
        .auth()
        .max_auth_age(Duration::from_secs(60))
        .build()
        .unwrap();
    let aged_base = serve(app(&aged)).await;
    // The extractor behind the optional layer rejects on its own.
    let optional = Router::new()
        .route("/me", get(|user: MeinGptUser| async move { Json(user) }))
        .layer(auth.optional_layer());
    let optional_base = serve(optional).await;
    let down = MockIssuer::start().await;
    down.fail(Fault::Status(500));
    let down_auth = down.auth().build().unwrap();
    let down_base = serve(app(&down_auth)).await;

    let member = issuer.token().role("member").sign();
    let old_login = issuer.token().claim("auth_time", now() - 3600).sign();
    let forged = format!("{}x", issuer.token().sign());
    let cases: [Case<'_>; 8] = [
        ("no token", format!("{base}/me"), vec![], 401),
        (
            "invalid token",
            format!("{base}/me"),
            vec![("x-meingpt-jwt", forged.as_str())],
            401,
        ),
        (
            "malformed request",
            format!("{base}/me"),
            vec![("authorization", "Bearer a b")],
            400,
        ),
        (
            "credentials sent twice",
            format!("{base}/me"),
            vec![
                ("x-meingpt-jwt", member.as_str()),
                ("x-meingpt-jwt", member.as_str()),
            ],
            400,
        ),
        (
            "guard refusal",
            format!("{base}/admin"),
            vec![("x-meingpt-jwt", member.as_str())],
            403,
        ),
        (
            "authentication too old",
            format!("{aged_base}/me"),
            vec![("x-meingpt-jwt", old_login.as_str())],
            401,
        ),
        (
            "keys unavailable",
            format!("{down_base}/me"),
            vec![("x-meingpt-jwt", member.as_str())],
            503,
        ),
        (
            "extractor without a user",
            format!("{optional_base}/me"),
            vec![],
            401,
        ),
    ];
    for (what, url, headers, status) in cases {
        let answer = fetch(&url, &headers).await;
        assert_eq!(answer.status, status, "{what}: {answer:?}");
        assert_eq!(
            answer.cache_control.as_deref(),
            Some("no-store"),
            "{what}: {answer:?}"
        );
    }
}

// ---------------------------------------------------------------------------
// auth_time in the future
// ---------------------------------------------------------------------------

#[tokio::test]
async fn an_auth_time_in_the_future_is_refused_with_or_without_a_max_age() {
    let issuer = MockIssuer::start().await;
    let plain = serve(app(&issuer.auth().build().unwrap())).await;
    let aged = serve(app(&issuer
        .auth()
        .max_auth_age(Duration::from_secs(300))
        .build()
        .unwrap()))
    .await;

    let future = issuer.token().claim("auth_time", now() + 3600).sign();
    let within_leeway = issuer.token().claim("auth_time", now() + 5).sign();
    for base in [&plain, &aged] {
        let me = format!("{base}/me");
        assert_invalid_token(
            &fetch(&me, &[("x-meingpt-jwt", &future)]).await,
            NOT_YET_VALID,
        );
        let answer = fetch(&me, &[("x-meingpt-jwt", &within_leeway)]).await;
        assert_eq!(answer.status, 200, "{answer:?}");
    }
    assert_eq!(issuer.fetch_count(), 2, "one fetch per authenticator");
}

// ---------------------------------------------------------------------------
// JWK hygiene
// ---------------------------------------------------------------------------

/// A JWKS of `keys`, served by the issuer in place of its own.
fn serve_keys(issuer: &MockIssuer, keys: Vec<Value>) {
    issuer.fail(Fault::Body(json!({ "keys": keys }).to_string()));
}

/// A second, valid key under another `kid`, so that a key set never
/// consists of the key under test alone.
async fn spare_key() -> Value {
    let other = MockIssuer::start().await;
    let mut jwk = other.public_jwk();
    jwk["kid"] = json!("spare");
    jwk
}

#[tokio::test]
async fn an_rsa_key_with_a_bad_exponent_is_never_used() {
    let issuer = MockIssuer::start().await;
    let spare = spare_key().await;
    let token = issuer.token().sign();
    let good = issuer.public_jwk();
    // 1, an even exponent (65536), a 5-byte exponent, an empty one.
    for (e, usable) in [
        ("AQAB", true),
        ("AQ", false),
        ("AQAA", false),
        ("AQAAAAE", false),
        ("", false),
    ] {
        let mut jwk = good.clone();
        jwk["e"] = json!(e);
        serve_keys(&issuer, vec![jwk, spare.clone()]);
        let before = issuer.fetch_count();
        let auth = issuer.auth().build().unwrap();
        let answer = fetch(
            &format!("{}/me", serve(app(&auth)).await),
            &[("x-meingpt-jwt", &token)],
        )
        .await;
        if usable {
            assert_eq!(answer.status, 200, "e={e}: {answer:?}");
        } else {
            assert_invalid_token(&answer, UNKNOWN_KEY);
        }
        assert_eq!(issuer.fetch_count(), before + 1, "e={e}");
    }
}

/// An EC key pair, its public JWK under `kid` with curve name `crv`.
fn ec_key(alg: &'static EcdsaSigningAlgorithm, kid: &str, crv: &str) -> (EcdsaKeyPair, Value) {
    let pair = EcdsaKeyPair::generate(alg).unwrap();
    let point = pair.public_key().as_ref().to_vec();
    let size = (point.len() - 1) / 2;
    let jwk = json!({
        "kty": "EC",
        "use": "sig",
        "kid": kid,
        "crv": crv,
        "x": b64(&point[1..1 + size]),
        "y": b64(&point[1 + size..]),
    });
    (pair, jwk)
}

/// The issuer's usual claims, signed `alg` with `pair` under `kid`.
fn ec_token(claims: TokenBuilder, pair: &EcdsaKeyPair, alg: &str, kid: &str) -> String {
    let (_, claims) = claims.into_parts();
    let header = json!({ "alg": alg, "typ": "JWT", "kid": kid });
    let input = format!(
        "{}.{}",
        b64(header.to_string()),
        b64(Value::Object(claims).to_string())
    );
    let signature = pair.sign(&SystemRandom::new(), input.as_bytes()).unwrap();
    format!("{input}.{}", b64(signature.as_ref()))
}

#[tokio::test]
async fn ec_keys_are_used_on_p256_and_p384_only() {
    let issuer = MockIssuer::start().await;
    let (_, spare) = ec_key(&ECDSA_P384_SHA384_FIXED_SIGNING, "spare", "P-384");
    let (p256, p256_jwk) = ec_key(&ECDSA_P256_SHA256_FIXED_SIGNING, "ec", "P-256");
    let (p384, p384_jwk) = ec_key(&ECDSA_P384_SHA384_FIXED_SIGNING, "ec", "P-384");
    let es256 = ec_token(issuer.token(), &p256, "ES256", "ec");
    let es384 = ec_token(issuer.token(), &p384, "ES384", "ec");

    // The same points under their own curve names verify; under the name
    // of any other curve the key is skipped.
    let cases = [
        (&p256_jwk, &es256, "P-256", true),
        (&p384_jwk, &es384, "P-384", true),
        (&p256_jwk, &es256, "secp256k1", false),
        (&p256_jwk, &es256, "P-521", false),
        (&p256_jwk, &es256, "p-256", false),
        (&p384_jwk, &es384, "P-521", false),
        (&p384_jwk, &es384, "P-256", false),
    ];
    for (jwk, token, crv, usable) in cases {
        let mut jwk = jwk.clone();
        jwk["crv"] = json!(crv);
        serve_keys(&issuer, vec![jwk, spare.clone()]);
        let before = issuer.fetch_count();
        // meinGPT signs RS256 only; an OpenID Connect issuer may use EC keys.
        let auth = MeinGptAuth::oidc(issuer.issuer())
            .audience(issuer.organization())
            .algorithms([Algorithm::ES256, Algorithm::ES384])
            .build()
            .unwrap();
        let answer = fetch(
            &format!("{}/me", serve(app(&auth)).await),
            &[("x-meingpt-jwt", token)],
        )
        .await;
        if usable {
            assert_eq!(answer.status, 200, "crv {crv}: {answer:?}");
        } else {
            assert_invalid_token(&answer, UNKNOWN_KEY);
        }
        assert_eq!(issuer.fetch_count(), before + 1, "crv {crv}");
    }
}

#[tokio::test]
async fn an_oct_key_in_a_jwks_is_never_taken() {
    let issuer = MockIssuer::start().await;
    let kid = issuer.current_kid();
    let secret = b"a shared secret of thirty-two bytes!";
    // A symmetric key under the RSA key's own `kid`: were it taken, the
    // two keys would make the `kid` ambiguous and the RSA token fail.
    let oct = json!({ "kty": "oct", "use": "sig", "alg": "HS256", "kid": kid, "k": b64(secret) });
    serve_keys(&issuer, vec![oct, issuer.public_jwk()]);
    let auth = issuer.auth().build().unwrap();
    let me = format!("{}/me", serve(app(&auth)).await);

    let answer = fetch(&me, &[("x-meingpt-jwt", &issuer.token().sign())]).await;
    assert_eq!(answer.status, 200, "{answer:?}");

    let (_, claims) = issuer.token().into_parts();
    let header = json!({ "alg": "HS256", "typ": "JWT", "kid": kid });
    let input = format!(
        "{}.{}",
        b64(header.to_string()),
        b64(Value::Object(claims).to_string())
    );
    let tag = hmac::sign(&hmac::Key::new(hmac::HMAC_SHA256, secret), input.as_bytes());
    let hs256 = format!("{input}.{}", b64(tag.as_ref()));
    let answer = fetch(&me, &[("x-meingpt-jwt", &hs256)]).await;
    assert_eq!(answer.status, 401, "{answer:?}");
    assert_eq!(issuer.fetch_count(), 1);
}

#[tokio::test]
async fn more_unknown_kids_than_the_negative_cache_holds_still_cost_one_fetch_per_cooldown() {
    // The negative cache remembers 10,000 unknown `kid`s; a flood past that
    // bound evicts entries, which must not turn into fetches.
    const FLOOD: usize = 10_500;
    let issuer = MockIssuer::start().await;
    let clock = MockClock::new();
    let auth = issuer.auth().clock(clock.clone()).build().unwrap();
    assert!(auth.verify(&issuer.token().sign()).await.is_ok());
    assert_eq!(issuer.fetch_count(), 1);

    // The `kid` is looked up before the signature is checked, so the flood
    // needs no signatures.
    let (header, claims) = issuer.token().into_parts();
    let payload = b64(Value::Object(claims).to_string());
    let with_kid = |kid: &str| {
        let mut header = header.clone();
        header.insert("kid".into(), json!(kid));
        format!(
            "{}.{payload}.c2lnbmF0dXJl",
            b64(Value::Object(header).to_string())
        )
    };
    let kids: Vec<String> = (0..FLOOD).map(|_| random_kid()).collect();
    clock.advance(Duration::from_secs(31));
    for kid in kids.iter().chain(&kids[..100]) {
        let refused = auth.verify(&with_kid(kid)).await.unwrap_err();
        assert_eq!(refused.to_string(), UNKNOWN_KEY);
    }
    assert_eq!(issuer.fetch_count(), 2, "one refetch for the whole flood");
    assert!(auth.verify(&issuer.token().sign()).await.is_ok());

    // The next cooldown allows the next single refetch.
    clock.advance(Duration::from_secs(31));
    assert!(auth.verify(&with_kid(&kids[0])).await.is_err());
    assert!(auth.verify(&with_kid(&kids[FLOOD - 1])).await.is_err());
    assert_eq!(issuer.fetch_count(), 3);
}

// ---------------------------------------------------------------------------
// The documented defaults: TTL 10 min, stale 6 h, timeout 5 s, 256 KiB
// ---------------------------------------------------------------------------

fn token_at(issuer: &MockIssuer, clock: &MockClock, sub: &str) -> String {
    issuer
        .token()
        .sub(sub)
        .expires_at(clock.now().as_secs() as i64 + 3600)
        .sign()
}

/// Polls `done` every 10 ms for at most 5 s.
async fn eventually(what: &str, mut done: impl FnMut() -> bool) {
    for _ in 0..500 {
        if done() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("{what} did not happen within 5 s");
}

#[tokio::test]
async fn by_default_keys_refresh_after_ten_minutes_and_serve_stale_for_six_hours_more() {
    let issuer = MockIssuer::start().await;
    let clock = MockClock::new();
    let auth = issuer.auth().clock(clock.clone()).build().unwrap();
    let me = format!("{}/me", serve(app(&auth)).await);
    let get = async |sub: &str| {
        let token = token_at(&issuer, &clock, sub);
        fetch(&me, &[("x-meingpt-jwt", &token)]).await.status
    };
    assert_eq!(get("at-start").await, 200);
    assert_eq!(issuer.fetch_count(), 1);

    // One second before the TTL nothing is due; at the TTL a request starts
    // the refresh, which fails. A refresh at any other time than the TTL
    // would leave a second fetch missing here, or move the stale limit
    // below, which counts from the last successful fetch.
    clock.advance(Duration::from_secs(599));
    assert_eq!(get("before-ttl").await, 200);
    clock.advance(Duration::from_secs(1));
    issuer.fail(Fault::Status(500));
    assert_eq!(get("at-ttl").await, 200);
    eventually("the refresh at the TTL", || issuer.fetch_count() == 2).await;

    // The refresh failed: the keys fetched at the start keep serving until
    // 10 min + 6 h after that fetch, and not a second longer.
    clock.advance(Duration::from_secs(6 * 3600 - 1));
    assert_eq!(get("last-stale-second").await, 200);
    clock.advance(Duration::from_secs(1));
    assert_eq!(get("past-stale").await, 503);
}

#[tokio::test]
async fn by_default_a_jwks_fetch_gives_up_after_five_seconds() {
    let issuer = MockIssuer::start().await;
    issuer.fail(Fault::Hang);
    let auth = issuer.auth().build().unwrap();
    let me = format!("{}/me", serve(app(&auth)).await);

    let started = Instant::now();
    let answer = fetch(&me, &[("x-meingpt-jwt", &issuer.token().sign())]).await;
    let elapsed = started.elapsed();

    assert_eq!(answer.status, 503, "{answer:?}");
    assert!(
        elapsed >= Duration::from_millis(4900) && elapsed < Duration::from_secs(8),
        "gave up after {elapsed:?}"
    );
    assert_eq!(issuer.fetch_count(), 1);
}

#[tokio::test]
async fn by_default_a_jwks_of_256_kib_is_read_and_one_byte_more_is_refused() {
    let issuer = MockIssuer::start().await;
    let token = issuer.token().sign();
    let jwks_of_size = |size: usize| {
        let empty = json!({ "keys": [issuer.public_jwk()], "padding": "" }).to_string();
        let document = json!({
            "keys": [issuer.public_jwk()],
            "padding": "x".repeat(size - empty.len()),
        })
        .to_string();
        assert_eq!(document.len(), size);
        document
    };
    for (size, status) in [(256 * 1024, 200), (256 * 1024 + 1, 503)] {
        issuer.fail(Fault::Body(jwks_of_size(size)));
        let auth = issuer.auth().build().unwrap();
        let answer = fetch(
            &format!("{}/me", serve(app(&auth)).await),
            &[("x-meingpt-jwt", &token)],
        )
        .await;
        assert_eq!(answer.status, status, "{size} bytes: {answer:?}");
    }
    assert_eq!(issuer.fetch_count(), 2);
}

// ---------------------------------------------------------------------------
// Logs hold nothing a request chose
// ---------------------------------------------------------------------------

#[tokio::test(flavor = "current_thread")]
async fn no_kid_malformed_request_or_fetch_failure_puts_request_chosen_text_in_any_log_line() {
    let log = CapturedLog::default();
    let writer = log.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_writer(move || writer.clone())
        .with_max_level(tracing::Level::TRACE)
        .with_ansi(false)
        .finish();
    let _guard = tracing::subscriber::set_default(subscriber);
    // See verification.rs: a second dispatcher keeps callsites first hit on
    // other threads from being cached as "never".
    let _second = tracing::Dispatch::new(tracing_subscriber::fmt().with_writer(io::sink).finish());

    let issuer = MockIssuer::start().await;
    let clock = MockClock::new();
    let auth = issuer.auth().clock(clock.clone()).build().unwrap();
    let router = app(&auth);
    let call = async |headers: &[(&str, &str)]| {
        let mut request = Request::get("/me");
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        let request = request.body(Body::empty()).unwrap();
        router.clone().oneshot(request).await.unwrap().status()
    };

    let marker = format!("chosen{}", random_kid());
    let kid_marker = format!("kid-{marker}");
    let with_kid = |kid: &str| issuer.token().kid(kid).sign();

    // A valid token first, so the keys are cached.
    assert_eq!(
        call(&[("x-meingpt-jwt", &issuer.token().sign())]).await,
        StatusCode::OK
    );
    // An unknown kid: one refetch, which succeeds and still lacks the key.
    clock.advance(Duration::from_secs(31));
    assert_eq!(
        call(&[("x-meingpt-jwt", &with_kid(&kid_marker))]).await,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(issuer.fetch_count(), 2);
    // Another unknown kid after the cooldown, while the issuer fails: the
    // refetch fails and is logged.
    clock.advance(Duration::from_secs(31));
    issuer.fail(Fault::Status(500));
    let failing_kid = format!("{kid_marker}-failing");
    assert_eq!(
        call(&[("x-meingpt-jwt", &with_kid(&failing_kid))]).await,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(issuer.fetch_count(), 3);
    // Malformed requests (400) carrying request-chosen text.
    let not_bearer = format!("Bearer {marker} {marker}");
    assert_eq!(
        call(&[("authorization", &not_bearer)]).await,
        StatusCode::BAD_REQUEST
    );
    assert_eq!(
        call(&[("x-meingpt-jwt", &marker), ("x-meingpt-jwt", &marker)]).await,
        StatusCode::BAD_REQUEST
    );
    // A token that is not a token, and one whose header is hostile.
    assert_eq!(
        call(&[("x-meingpt-jwt", &format!("{marker}.{marker}.{marker}"))]).await,
        StatusCode::UNAUTHORIZED
    );
    let (mut header, claims) = issuer.token().into_parts();
    header.insert("kid".into(), json!(format!("{marker}\r\nInjected: yes")));
    header.insert(
        "jku".into(),
        json!(format!("https://{marker}.example/jwks")),
    );
    let hostile = format!(
        "{}.{}.{}",
        b64(Value::Object(header).to_string()),
        b64(Value::Object(claims).to_string()),
        b64(marker.as_bytes())
    );
    assert_eq!(
        call(&[("x-meingpt-jwt", &hostile)]).await,
        StatusCode::UNAUTHORIZED
    );

    let text = log.text();
    assert!(text.contains("JWKS"), "the fetches were not logged: {text}");
    assert!(
        text.lines()
            .any(|line| line.contains("WARN") || line.contains("ERROR")),
        "the failed fetch was not logged: {text}"
    );
    assert!(
        text.contains("rejected"),
        "the rejections were not logged: {text}"
    );
    assert!(
        !text.contains(&marker),
        "a log line holds text the request chose: {}",
        text.lines().find(|line| line.contains(&marker)).unwrap()
    );
}

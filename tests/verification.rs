//! Verification end to end: forged, tampered, confused, expired and malformed
//! tokens sent to a real server on loopback, and exactly what a client sees
//! of each rejection — status, challenge, JSON body, and how often the
//! issuer's key set was fetched.

mod common;

use std::io;
use std::net::TcpListener as StdTcpListener;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use aws_lc_rs::hmac;
use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::rsa::KeySize;
use aws_lc_rs::signature::{self, EcdsaKeyPair, KeyPair, RsaKeyPair};
use axum::body::Body;
use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use common::{Seen, app, get_with, get_with_token, serve};
use http::{Request, StatusCode};
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use meingpt_auth::MeinGptAuth;
use meingpt_auth::testing::MockIssuer;
use serde_json::{Map, Value, json};
use tower::ServiceExt;

const TOO_LARGE: &str = "the token is too large";
const MALFORMED: &str = "the token is malformed";
const UNSUPPORTED_ALGORITHM: &str = "the token's signing algorithm is not accepted";
const UNSUPPORTED_HEADER: &str = "the token uses a header parameter that is not supported";
const UNKNOWN_KEY: &str = "the token's signing key is unknown";
const BAD_SIGNATURE: &str = "the token's signature is invalid";
const EXPIRED: &str = "the token has expired";
const NOT_YET_VALID: &str = "the token is not valid yet";
const WRONG_ISSUER: &str = "the token was issued by another issuer";
const WRONG_AUDIENCE: &str = "the token is meant for another audience";
const MISSING_CLAIM: &str = "the token lacks a required claim";
const INVALID_CLAIM: &str = "the token has a claim of the wrong type";
const MALFORMED_CREDENTIALS: &str = "the credentials are not a well-formed bearer token";

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

/// Asserts a `400 invalid_request` with `description`.
fn assert_invalid_request(seen: &Seen, description: &str) {
    assert_eq!(seen.status, 400, "body: {}", seen.body);
    let expected = format!(
        "Bearer realm=\"meingpt\", error=\"invalid_request\", error_description=\"{description}\""
    );
    assert_eq!(seen.www_authenticate.as_deref(), Some(expected.as_str()));
    assert_eq!(seen.json()["error"], "invalid_request");
    assert_eq!(seen.json()["error_description"], description);
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

/// The header and claims of a good token from `issuer`, unsigned.
fn good_parts(issuer: &MockIssuer) -> (Value, Value) {
    let (header, claims) = issuer.token().into_parts();
    (Value::Object(header), Value::Object(claims))
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

/// The public JWK of an attacker's RSA key.
fn rsa_public_jwk(key: &RsaKeyPair) -> Value {
    let public = key.public_key();
    json!({
        "kty": "RSA",
        "use": "sig",
        "alg": "RS256",
        "n": b64(public.modulus().big_endian_without_leading_zero()),
        "e": b64(public.exponent().big_endian_without_leading_zero()),
    })
}

/// The issuer's PKCS#1 public key as PEM text.
fn rsa_public_pem(der: &[u8]) -> String {
    let body = STANDARD.encode(der);
    let lines: Vec<&str> = body
        .as_bytes()
        .chunks(64)
        .map(|line| std::str::from_utf8(line).unwrap())
        .collect();
    format!(
        "-----BEGIN RSA PUBLIC KEY-----\n{}\n-----END RSA PUBLIC KEY-----\n",
        lines.join("\n")
    )
}

/// The three segments of a compact token.
fn segments(token: &str) -> [String; 3] {
    let parts: Vec<&str> = token.split('.').collect();
    assert_eq!(parts.len(), 3, "not a compact JWS: {token}");
    [parts[0].into(), parts[1].into(), parts[2].into()]
}

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

    /// Completed connections wait in the accept queue, so an empty queue
    /// means nobody connected.
    fn assert_untouched(&self) {
        match self.listener.accept() {
            Err(error) if error.kind() == io::ErrorKind::WouldBlock => {}
            Ok((_, peer)) => panic!("the verifier connected to a URL from the token ({peer})"),
            Err(error) => panic!("listener failed: {error}"),
        }
    }
}

/// A good token whose total length is exactly `target` bytes.
fn token_of_length(issuer: &MockIssuer, target: usize) -> String {
    let b64_len = |bytes: usize| (4 * bytes).div_ceil(3);
    let signature_len = b64_len(256);
    for header_pad in 0..4 {
        let base = issuer.token().header("x", "h".repeat(header_pad));
        for pad in (target * 3 / 4).saturating_sub(800)..target {
            let builder = base.clone().claim("pad", "p".repeat(pad));
            let (header, claims) = builder.clone().into_parts();
            let length = b64_len(Value::Object(header).to_string().len())
                + 1
                + b64_len(Value::Object(claims).to_string().len())
                + 1
                + signature_len;
            if length == target {
                let token = builder.sign();
                assert_eq!(token.len(), target);
                return token;
            }
            if length > target {
                break;
            }
        }
    }
    panic!("no token of exactly {target} bytes");
}

/// Collects everything a `tracing` subscriber writes.
#[derive(Clone, Default)]
struct CapturedLog(Arc<Mutex<Vec<u8>>>);

impl io::Write for CapturedLog {
    fn write(&mut self, bytes: &[u8]) -> io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(bytes);
        Ok(bytes.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl CapturedLog {
    fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().unwrap()).into_owned()
    }
}

// ---------------------------------------------------------------------------
// Algorithm confusion
// ---------------------------------------------------------------------------

#[tokio::test]
async fn alg_none_in_any_spelling_is_rejected_before_any_key_lookup() {
    // Attack: "alg":"none" (CVE-2015-9235) with a made-up or a real signature segment.
    let (issuer, me) = start().await;
    let real_signature = segments(&issuer.token().sign())[2].clone();
    let (_, claims) = good_parts(&issuer);

    for alg in ["none", "None", "NONE", "nOnE"] {
        let header = json!({"alg": alg, "typ": "JWT", "kid": issuer.current_kid()});
        let unsigned = signing_input(&header, &claims);
        for signature in [b64("x"), real_signature.clone()] {
            let token = format!("{unsigned}.{signature}");
            assert_refused(&me, &token, UNSUPPORTED_ALGORITHM).await;
        }
    }

    assert_eq!(issuer.fetch_count(), 0);
    assert_still_serves_good_tokens(&issuer, &me).await;
}

#[tokio::test]
async fn alg_none_with_an_empty_signature_is_refused_as_malformed_before_any_key_lookup() {
    // Attack: the classic unsigned token "header.payload." with "alg":"none".
    // The empty-segment check runs before the header is read (verify.rs step 2),
    // so this is "malformed" rather than "algorithm not accepted"; either way
    // no key is looked up.
    let (issuer, me) = start().await;
    let (_, claims) = good_parts(&issuer);

    for alg in ["none", "None", "NONE"] {
        let header = json!({"alg": alg, "typ": "JWT"});
        let token = format!("{}.", signing_input(&header, &claims));
        assert_refused(&me, &token, MALFORMED).await;
    }

    assert_eq!(issuer.fetch_count(), 0);
    assert_still_serves_good_tokens(&issuer, &me).await;
}

#[tokio::test]
async fn hs256_keyed_with_the_issuers_public_key_is_rejected_as_an_unsupported_algorithm() {
    // Attack: RS256/HS256 key confusion — HMAC with the public key as the secret.
    let (issuer, me) = start().await;
    let (mut header, claims) = good_parts(&issuer);
    header["alg"] = json!("HS256");
    let der = issuer.public_key_der();
    let pem = rsa_public_pem(&der);
    assert!(pem.starts_with("-----BEGIN RSA PUBLIC KEY-----\nMII"));

    let mut tokens = Vec::new();
    for secret in [der.as_slice(), pem.as_bytes(), pem.trim_end().as_bytes()] {
        // By hand with aws-lc-rs …
        let input = signing_input(&header, &claims);
        let tag = hmac::sign(&hmac::Key::new(hmac::HMAC_SHA256, secret), input.as_bytes());
        tokens.push(format!("{input}.{}", b64(tag.as_ref())));
        // … and as an attacker would with jsonwebtoken.
        let mut jwt_header = Header::new(Algorithm::HS256);
        jwt_header.kid = Some(issuer.current_kid());
        let encoded =
            jsonwebtoken::encode(&jwt_header, &claims, &EncodingKey::from_secret(secret)).unwrap();
        tokens.push(encoded);
    }
    for token in &tokens {
        assert_refused(&me, token, UNSUPPORTED_ALGORITHM).await;
    }

    assert_eq!(issuer.fetch_count(), 0);
    assert_still_serves_good_tokens(&issuer, &me).await;
}

#[tokio::test]
async fn other_rsa_algorithms_signed_with_the_real_key_are_rejected_before_any_key_lookup() {
    // Attack: algorithm substitution — a genuine signature under an algorithm the
    // deployment never allowed (PS*/RS384/RS512), to widen the verifier's surface.
    let (issuer, me) = start().await;

    for alg in [
        Algorithm::PS256,
        Algorithm::PS384,
        Algorithm::PS512,
        Algorithm::RS384,
        Algorithm::RS512,
    ] {
        let token = issuer.token().role("admin").sign_with(alg);
        assert_refused(&me, &token, UNSUPPORTED_ALGORITHM).await;
    }

    assert_eq!(issuer.fetch_count(), 0);
    assert_still_serves_good_tokens(&issuer, &me).await;
}

#[tokio::test]
async fn es256_tokens_are_rejected_before_any_key_lookup_whatever_their_signature() {
    // Attack: ECDSA substitution, including the all-zero "psychic signature" (CVE-2022-21449).
    let (issuer, me) = start().await;
    let (mut header, claims) = good_parts(&issuer);
    header["alg"] = json!("ES256");
    let input = signing_input(&header, &claims);

    let ec_key = EcdsaKeyPair::generate(&signature::ECDSA_P256_SHA256_FIXED_SIGNING).unwrap();
    let real = ec_key.sign(&SystemRandom::new(), input.as_bytes()).unwrap();
    assert_eq!(real.as_ref().len(), 64);
    let signed = format!("{input}.{}", b64(real.as_ref()));
    let psychic = format!("{input}.{}", b64([0u8; 64]));

    let mut kidless = header.clone();
    kidless.as_object_mut().unwrap().remove("kid");
    let kidless_input = signing_input(&kidless, &claims);
    let kidless_psychic = format!("{kidless_input}.{}", b64([0u8; 64]));

    for token in [&signed, &psychic, &kidless_psychic] {
        assert_refused(&me, token, UNSUPPORTED_ALGORITHM).await;
    }

    assert_eq!(issuer.fetch_count(), 0);
    assert_still_serves_good_tokens(&issuer, &me).await;
}

#[tokio::test]
async fn alg_names_are_matched_exactly_and_must_be_strings() {
    // Attack: parser differentials on "alg" (case, whitespace, unknown names, wrong type).
    let (issuer, me) = start().await;
    let (header, claims) = good_parts(&issuer);
    let with_alg = |alg: Value| {
        let mut header = header.clone();
        header["alg"] = alg;
        format!("{}.{}", signing_input(&header, &claims), b64("sig"))
    };

    for alg in [
        "rs256",
        "Rs256",
        "RS256 ",
        " RS256",
        "RS256\u{0}",
        "",
        "EdDSA",
        "HS512",
    ] {
        assert_refused(&me, &with_alg(json!(alg)), UNSUPPORTED_ALGORITHM).await;
    }
    for alg in [json!(256), json!(["RS256"]), Value::Null] {
        assert_refused(&me, &with_alg(alg), MALFORMED).await;
    }
    let mut no_alg = header.clone();
    no_alg.as_object_mut().unwrap().remove("alg");
    let token = format!("{}.{}", signing_input(&no_alg, &claims), b64("sig"));
    assert_refused(&me, &token, MALFORMED).await;

    assert_eq!(issuer.fetch_count(), 0);
}

// ---------------------------------------------------------------------------
// Signatures
// ---------------------------------------------------------------------------

#[tokio::test]
async fn signature_forged_with_another_key_under_the_issuers_kid_is_rejected() {
    // Attack: forgery — the attacker signs with their own RSA key and borrows the issuer's kid.
    let (issuer, me) = start().await;
    let attacker = attacker_rsa_key();
    let (header, mut claims) = good_parts(&issuer);
    claims["role"] = json!("admin");
    assert_eq!(header["kid"], issuer.current_kid());
    let forged = rs256_signed_by(&attacker, &header, &claims);

    assert_refused(&me, &forged, BAD_SIGNATURE).await;
    let admin = format!("{}/admin", me.trim_end_matches("/me"));
    assert_refused(&admin, &forged, BAD_SIGNATURE).await;

    assert_eq!(issuer.fetch_count(), 1);
    assert_still_serves_good_tokens(&issuer, &me).await;
    assert_eq!(issuer.fetch_count(), 1);
}

#[tokio::test]
async fn payload_swapped_for_an_admin_payload_fails_the_signature_check() {
    // Attack: tampering — keep header and signature of a real token, rewrite the claims.
    let (issuer, me) = start().await;
    let genuine = issuer.token().role("member").sign();
    let [header, payload, signature] = segments(&genuine);
    let mut claims: Value =
        serde_json::from_slice(&URL_SAFE_NO_PAD.decode(&payload).unwrap()).unwrap();
    claims["role"] = json!("admin");
    claims["sub"] = json!("root");
    let tampered = format!("{header}.{}.{signature}", b64(claims.to_string()));

    assert_refused(&me, &tampered, BAD_SIGNATURE).await;
    let admin = format!("{}/admin", me.trim_end_matches("/me"));
    assert_refused(&admin, &tampered, BAD_SIGNATURE).await;
    // The genuine token is untouched by the attempt.
    assert_eq!(get_with_token(&me, &genuine).await.status, 200);
    assert_eq!(get_with_token(&admin, &genuine).await.status, 403);

    assert_eq!(issuer.fetch_count(), 1);
}

#[tokio::test]
async fn signature_bytes_that_were_truncated_or_flipped_are_rejected() {
    // Attack: signature malleability — truncated, extended, bit-flipped or foreign signatures.
    let (issuer, me) = start().await;
    let [header, payload, signature] = segments(&issuer.token().sign());
    let mut raw = URL_SAFE_NO_PAD.decode(&signature).unwrap();
    let other = segments(&issuer.token().sub("someone-else").sign())[2].clone();

    let mut flipped = raw.clone();
    flipped[100] ^= 0x01;
    raw.truncate(255);
    let mut extended = URL_SAFE_NO_PAD.decode(&signature).unwrap();
    extended.push(0);

    for bad in [
        b64(flipped),
        b64(raw),
        b64(extended),
        other,
        b64([0u8; 256]),
    ] {
        let token = format!("{header}.{payload}.{bad}");
        assert_refused(&me, &token, BAD_SIGNATURE).await;
    }

    assert_eq!(issuer.fetch_count(), 1);
    assert_still_serves_good_tokens(&issuer, &me).await;
}

// ---------------------------------------------------------------------------
// Issuer and audience
// ---------------------------------------------------------------------------

#[tokio::test]
async fn token_from_another_issuer_is_rejected_even_when_signed_with_the_right_key() {
    // Attack: issuer confusion — a token minted by (or for) another meinGPT instance.
    let (issuer, me) = start().await;
    let trailing_slash = format!("{}/", issuer.issuer());
    let upper_case = issuer.issuer().to_uppercase();
    let with_path = format!("{}/api", issuer.issuer());

    for iss in [
        "https://app.meingpt.com",
        trailing_slash.as_str(),
        upper_case.as_str(),
        with_path.as_str(),
        "",
    ] {
        let token = issuer.token().issuer(iss).sign();
        assert_refused(&me, &token, WRONG_ISSUER).await;
    }
    let token = issuer.token().claim("iss", json!([issuer.issuer()])).sign();
    assert_refused(&me, &token, INVALID_CLAIM).await;
    let token = issuer.token().without("iss").sign();
    assert_refused(&me, &token, MISSING_CLAIM).await;

    assert_eq!(issuer.fetch_count(), 1);
    assert_still_serves_good_tokens(&issuer, &me).await;
}

#[tokio::test]
async fn token_for_another_organization_is_rejected() {
    // Attack: audience confusion — replaying a token meant for another organization's app.
    let (issuer, me) = start().await;

    for aud in [
        json!("org-other"),
        json!("ORG-TEST"),
        json!("org-test "),
        json!(""),
        json!(["org-other"]),
        json!(["org-other", "org-test2"]),
    ] {
        let token = issuer.token().audience(aud.clone()).sign();
        let seen = assert_refused(&me, &token, WRONG_AUDIENCE).await;
        assert!(!seen.body.contains("org-other"), "{aud}: {}", seen.body);
    }

    assert_eq!(issuer.fetch_count(), 1);
    assert_still_serves_good_tokens(&issuer, &me).await;
}

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

#[tokio::test]
async fn audience_of_the_wrong_json_type_is_an_invalid_claim() {
    // Attack: type confusion on "aud" — empty array, number, object, mixed array.
    let (issuer, me) = start().await;

    for aud in [
        json!([]),
        json!(42),
        json!(true),
        Value::Null,
        json!({"org-test": true}),
        json!(["org-test", 5]),
        json!([["org-test"]]),
    ] {
        let token = issuer.token().audience(aud).sign();
        assert_refused(&me, &token, INVALID_CLAIM).await;
    }

    assert_eq!(issuer.fetch_count(), 1);
    assert_still_serves_good_tokens(&issuer, &me).await;
}

#[tokio::test]
async fn token_without_an_audience_lacks_a_required_claim() {
    // Attack: audience stripping — a token valid "for everyone".
    let (issuer, me) = start().await;
    let token = issuer.token().without("aud").sign();
    assert_refused(&me, &token, MISSING_CLAIM).await;
    assert_eq!(issuer.fetch_count(), 1);
    assert_still_serves_good_tokens(&issuer, &me).await;
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
}

#[tokio::test]
async fn token_issued_in_the_future_is_rejected() {
    // Attack: a token minted with a forward-dated iat (compromised or skewed minting).
    let (issuer, me) = start().await;
    let token = issuer.token().issued_at(now() + 120).sign();
    assert_refused(&me, &token, NOT_YET_VALID).await;

    let within_leeway = issuer.token().issued_at(now() + 10).sign();
    assert_eq!(get_with_token(&me, &within_leeway).await.status, 200);
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
// Required and strictly typed claims
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
async fn times_that_are_not_integers_are_invalid_claims() {
    // Attack: type confusion on NumericDate ("exp":"123", floats, null) across parsers.
    let (issuer, me) = start().await;
    let later = now() + 3600;

    for (name, value) in [
        ("exp", json!("123")),
        ("exp", json!(later.to_string())),
        ("exp", json!(later as f64 + 0.5)),
        ("exp", json!(later as f64)),
        ("exp", Value::Null),
        ("exp", json!(true)),
        ("exp", json!([later])),
        ("nbf", json!("0")),
        ("nbf", Value::Null),
        ("iat", json!(now() as f64 + 0.25)),
        ("iat", json!({})),
    ] {
        let token = issuer.token().claim(name, value).sign();
        assert_refused(&me, &token, INVALID_CLAIM).await;
    }

    assert_eq!(issuer.fetch_count(), 1);
    assert_still_serves_good_tokens(&issuer, &me).await;
}

#[tokio::test]
async fn sub_that_is_not_a_string_is_an_invalid_claim() {
    // Attack: type confusion on "sub" (numeric ids colliding with string ids).
    let (issuer, me) = start().await;
    for sub in [
        json!(42),
        json!(["user-1"]),
        json!({"id": "user-1"}),
        Value::Null,
    ] {
        let token = issuer.token().claim("sub", sub).sign();
        assert_refused(&me, &token, INVALID_CLAIM).await;
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
// Header parameters
// ---------------------------------------------------------------------------

#[tokio::test]
async fn crit_b64_and_nested_jwt_headers_are_refused_before_any_key_lookup() {
    // Attack: header extensions the verifier would silently ignore (RFC 7515 §4.1.11, RFC 7797).
    let (issuer, me) = start().await;

    for (name, value) in [
        ("crit", json!(["exp"])),
        ("crit", json!([])),
        ("crit", json!(["b64"])),
        ("b64", json!(false)),
        ("b64", json!(true)),
        ("cty", json!("JWT")),
        ("cty", json!("jwt")),
        ("cty", json!(5)),
    ] {
        let token = issuer.token().header(name, value).sign();
        assert_refused(&me, &token, UNSUPPORTED_HEADER).await;
    }
    assert_eq!(issuer.fetch_count(), 0);

    // An ordinary content type is no reason to refuse.
    let json_cty = issuer.token().header("cty", "application/json").sign();
    assert_eq!(get_with_token(&me, &json_cty).await.status, 200);
}

#[tokio::test]
async fn jku_and_x5u_in_the_header_are_never_fetched() {
    // Attack: key injection by URL — the header points at the attacker's own key set.
    let (issuer, me) = start().await;
    let tripwire = Tripwire::start();
    let attacker = attacker_rsa_key();
    let (header, mut claims) = good_parts(&issuer);
    claims["role"] = json!("admin");

    let mut tokens = Vec::new();
    for (name, path) in [("jku", "/jwks.json"), ("x5u", "/cert.pem")] {
        let mut with_url = header.clone();
        with_url[name] = json!(tripwire.url(path));
        tokens.push(rs256_signed_by(&attacker, &with_url, &claims));
        with_url.as_object_mut().unwrap().remove("kid");
        tokens.push(rs256_signed_by(&attacker, &with_url, &claims));
    }
    for token in &tokens {
        assert_refused(&me, token, BAD_SIGNATURE).await;
    }

    tripwire.assert_untouched();
    assert_eq!(issuer.fetch_count(), 1);
    assert_still_serves_good_tokens(&issuer, &me).await;
    tripwire.assert_untouched();
}

#[tokio::test]
async fn embedded_jwk_or_x5c_of_the_attackers_key_is_ignored() {
    // Attack: key injection inline (CVE-2018-0114) — the header carries the attacker's public key.
    let (issuer, me) = start().await;
    let attacker = attacker_rsa_key();
    let (header, mut claims) = good_parts(&issuer);
    claims["role"] = json!("admin");
    let der_b64 = STANDARD.encode(attacker.public_key().as_ref());

    let mut tokens = Vec::new();
    for kid in [
        Some(issuer.current_kid()),
        None,
        Some("attacker".to_owned()),
    ] {
        let mut jwk = rsa_public_jwk(&attacker);
        let mut with_jwk = header.clone();
        match &kid {
            Some(kid) => {
                jwk["kid"] = json!(kid);
                with_jwk["kid"] = json!(kid);
            }
            None => {
                with_jwk.as_object_mut().unwrap().remove("kid");
            }
        }
        with_jwk["jwk"] = jwk;
        with_jwk["x5c"] = json!([der_b64]);
        tokens.push((kid, rs256_signed_by(&attacker, &with_jwk, &claims)));
    }
    for (kid, token) in &tokens {
        // A kid the issuer does not publish is unknown; with the issuer's kid,
        // or none while it publishes one key, the issuer's key checks the signature.
        let expected = match kid.as_deref() {
            Some("attacker") => UNKNOWN_KEY,
            _ => BAD_SIGNATURE,
        };
        let seen = assert_refused(&me, token, expected).await;
        assert!(!seen.body.contains("attacker"), "{}", seen.body);
    }

    // The unknown kid comes within the refetch cooldown of the first fetch,
    // so it is refused from the cache without asking the issuer again.
    assert_eq!(issuer.fetch_count(), 1);
    assert_still_serves_good_tokens(&issuer, &me).await;
}

#[tokio::test]
async fn kid_that_is_not_a_string_is_malformed_and_an_overlong_kid_is_unknown_without_fetching() {
    // Attack: kid injection — non-string kids and huge kids aimed at the key cache.
    let (issuer, me) = start().await;
    for kid in [
        json!(1),
        json!(["key-1"]),
        json!({"kid": "key-1"}),
        Value::Null,
    ] {
        let token = issuer.token().header("kid", kid).sign();
        assert_refused(&me, &token, MALFORMED).await;
    }
    let long = issuer.token().kid(&"k".repeat(257)).sign();
    assert_refused(&me, &long, UNKNOWN_KEY).await;

    assert_eq!(issuer.fetch_count(), 0);
    assert_still_serves_good_tokens(&issuer, &me).await;
}

// ---------------------------------------------------------------------------
// Key selection without kid
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
async fn token_without_kid_is_refused_once_the_issuer_publishes_two_keys() {
    // Attack: key ambiguity — without a kid the verifier must not try keys until one fits.
    let issuer = MockIssuer::start().await;
    let before = issuer.token().sign();
    let new_kid = issuer.rotate();
    assert_eq!(new_kid, issuer.current_kid());
    // A fresh authenticator, so its cache holds both published keys.
    let me = serve_me(&issuer.auth().build().unwrap()).await;

    let kidless = issuer.token().without_header("kid").sign();
    assert_refused(&me, &kidless, UNKNOWN_KEY).await;
    assert_eq!(issuer.fetch_count(), 1);

    // Tokens that name their key keep working, old and new.
    assert_eq!(get_with_token(&me, &before).await.status, 200);
    assert_still_serves_good_tokens(&issuer, &me).await;
    assert_eq!(issuer.fetch_count(), 1);
}

// ---------------------------------------------------------------------------
// Size
// ---------------------------------------------------------------------------

#[tokio::test]
async fn token_over_16_kib_is_refused_before_decoding_or_fetching() {
    // Attack: resource exhaustion with huge tokens.
    let (issuer, me) = start().await;

    let just_over = token_of_length(&issuer, 16 * 1024 + 1);
    assert_refused(&me, &just_over, TOO_LARGE).await;
    let junk = "A".repeat(64 * 1024);
    assert_refused(&me, &junk, TOO_LARGE).await;
    let huge_header = format!("{}.e30.e30", "A".repeat(20_000));
    assert_refused(&me, &huge_header, TOO_LARGE).await;
    assert_eq!(issuer.fetch_count(), 0);

    let at_limit = token_of_length(&issuer, 16 * 1024);
    assert_eq!(get_with_token(&me, &at_limit).await.status, 200);
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
// Duplicate JSON members
// ---------------------------------------------------------------------------

#[tokio::test]
async fn duplicate_header_members_are_malformed_before_any_key_lookup() {
    // Attack: JSON parser differential — {"alg":"RS256","alg":"none"} means different things to different parsers.
    let (issuer, me) = start().await;
    let kid = issuer.current_kid();
    let claims = Value::Object(issuer.token().into_parts().1).to_string();

    for header in [
        r#"{"alg":"RS256","alg":"none"}"#.to_owned(),
        r#"{"alg":"none","alg":"RS256"}"#.to_owned(),
        r#"{"alg":"RS256","alg":"RS256"}"#.to_owned(),
        format!(r#"{{"alg":"RS256","kid":"{kid}","kid":"other"}}"#),
        format!(r#"{{"alg":"RS256","kid":"{kid}","crit":[],"crit":[]}}"#),
    ] {
        let token = issuer.sign_raw(&header, &claims);
        assert_refused(&me, &token, MALFORMED).await;
    }

    assert_eq!(issuer.fetch_count(), 0);
    assert_still_serves_good_tokens(&issuer, &me).await;
}

#[tokio::test]
async fn duplicate_claims_are_malformed_even_under_a_valid_signature() {
    // Attack: JSON parser differential in the claims — two subs, two exps, nested duplicates.
    let (issuer, me) = start().await;
    let header = format!(r#"{{"alg":"RS256","kid":"{}"}}"#, issuer.current_kid());
    let iss = issuer.issuer();
    let exp = now() + 3600;
    let expired = now() - 3600;

    let valid = format!(r#"{{"iss":"{iss}","aud":"org-test","exp":{exp},"sub":"user-1"}}"#);
    assert_eq!(
        get_with_token(&me, &issuer.sign_raw(&header, &valid))
            .await
            .status,
        200,
        "sign_raw makes good tokens"
    );

    for claims in [
        format!(r#"{{"iss":"{iss}","aud":"org-test","exp":{exp},"sub":"user-1","sub":"admin"}}"#),
        format!(r#"{{"iss":"{iss}","aud":"org-test","exp":{expired},"sub":"user-1","exp":{exp}}}"#),
        format!(r#"{{"iss":"{iss}","aud":"org-test","aud":"org-other","exp":{exp},"sub":"u"}}"#),
        format!(
            r#"{{"iss":"{iss}","aud":"org-test","exp":{exp},"sub":"u","role":"member","role":"admin"}}"#
        ),
        format!(
            r#"{{"iss":"{iss}","aud":"org-test","exp":{exp},"sub":"u","teams":[{{"id":"t1","id":"t2","name":"Engineering"}}]}}"#
        ),
    ] {
        let token = issuer.sign_raw(&header, &claims);
        assert_refused(&me, &token, MALFORMED).await;
    }

    assert_eq!(issuer.fetch_count(), 1);
    assert_still_serves_good_tokens(&issuer, &me).await;
}

// ---------------------------------------------------------------------------
// Shape of the compact serialization
// ---------------------------------------------------------------------------

#[tokio::test]
async fn tokens_without_exactly_three_segments_are_malformed() {
    // Attack: serialization confusion — unsigned two-part tokens, extra parts, JWE-shaped tokens.
    let (issuer, me) = start().await;
    let good = issuer.token().sign();
    let [header, payload, signature] = segments(&good);

    for token in [
        header.clone(),
        format!("{header}.{payload}"),
        format!("{good}.{signature}"),
        format!("{header}.{payload}.{signature}.{signature}.{signature}"),
        format!("{header}.AAAA.{payload}.BBBB.{signature}"),
    ] {
        assert_refused(&me, &token, MALFORMED).await;
    }

    assert_eq!(issuer.fetch_count(), 0);
    assert_still_serves_good_tokens(&issuer, &me).await;
}

#[tokio::test]
async fn empty_segments_are_malformed() {
    // Attack: empty parts that some parsers read as "no header", "no claims" or "no signature".
    let (issuer, me) = start().await;
    let [header, payload, signature] = segments(&issuer.token().sign());

    for token in [
        "..".to_owned(),
        format!(".{payload}.{signature}"),
        format!("{header}..{signature}"),
        format!("{header}.{payload}."),
        format!("{header}.."),
    ] {
        assert_refused(&me, &token, MALFORMED).await;
    }

    assert_eq!(issuer.fetch_count(), 0);
    assert_still_serves_good_tokens(&issuer, &me).await;
}

#[tokio::test]
async fn padding_and_standard_base64_characters_reach_the_verifier_and_are_malformed() {
    // Attack: base64 variant confusion — '=', '+' and '/' decode differently in lenient decoders.
    let (issuer, me) = start().await;
    let [header, payload, signature] = segments(&issuer.token().sign());
    let replace_first = |segment: &str, with: char| format!("{with}{}", &segment[1..]);

    for token in [
        format!("{header}.{payload}.{signature}=="),
        format!("{header}.{payload}.{signature}="),
        format!("{header}.{payload}.{}", replace_first(&signature, '+')),
        format!("{header}.{payload}.{}", replace_first(&signature, '/')),
        format!("{header}.{}.{signature}", replace_first(&payload, '+')),
        format!("{}.{payload}.{signature}", replace_first(&header, '/')),
        format!(
            "{header}.{payload}.{}",
            STANDARD.encode(URL_SAFE_NO_PAD.decode(&signature).unwrap())
        ),
    ] {
        assert_refused(&me, &token, MALFORMED).await;
    }
    assert_eq!(issuer.fetch_count(), 0);

    // '=' in the middle is not even a bearer token (RFC 6750 b64token).
    let padded_header = format!("{header}==.{payload}.{signature}");
    assert_invalid_request(
        &get_with_token(&me, &padded_header).await,
        MALFORMED_CREDENTIALS,
    );

    assert_still_serves_good_tokens(&issuer, &me).await;
}

#[tokio::test]
async fn whitespace_inside_the_token_is_an_invalid_request() {
    // Attack: header smuggling — tokens split by spaces or tabs.
    let (issuer, me) = start().await;
    let [header, payload, signature] = segments(&issuer.token().sign());

    for token in [
        format!("{header}. {payload}.{signature}"),
        format!("{header}.{payload}\t.{signature}"),
        format!(
            "{header}.{payload}.{} {}",
            &signature[..10],
            &signature[10..]
        ),
    ] {
        let seen = get_with_token(&me, &token).await;
        assert_invalid_request(&seen, MALFORMED_CREDENTIALS);
        assert_not_echoed(&seen, &token);
        let bearer = format!("Bearer {token}");
        let seen = get_with(&me, &[("authorization", bearer.as_str())]).await;
        assert_invalid_request(&seen, MALFORMED_CREDENTIALS);
    }

    assert_eq!(issuer.fetch_count(), 0);
    assert_still_serves_good_tokens(&issuer, &me).await;
}

#[tokio::test]
async fn segments_that_are_not_json_objects_are_malformed() {
    // Attack: parser confusion with non-object JSON, non-UTF-8 bytes or trailing garbage.
    let (issuer, me) = start().await;
    let kid = issuer.current_kid();
    let claims = Value::Object(issuer.token().into_parts().1).to_string();

    for header in [
        "not json".to_owned(),
        r#"["RS256"]"#.to_owned(),
        r#""RS256""#.to_owned(),
        format!(r#"{{"alg":"RS256","kid":"{kid}"}} trailing"#),
        format!(r#"{{"alg":"RS256","kid":"{kid}"}}{{}}"#),
    ] {
        let token = issuer.sign_raw(&header, &claims);
        assert_refused(&me, &token, MALFORMED).await;
    }
    let not_utf8 = format!(
        "{}.{}.{}",
        b64([0xff, 0xfe, 0xfd]),
        b64(&claims),
        b64("sig")
    );
    assert_refused(&me, &not_utf8, MALFORMED).await;
    assert_eq!(issuer.fetch_count(), 0);

    // Bad claims are only found after the signature checks out.
    let header = format!(r#"{{"alg":"RS256","kid":"{kid}"}}"#);
    for claims in ["[]", "null", "not json", "{\"sub\":\"u\"", "{} {}"] {
        let token = issuer.sign_raw(&header, claims);
        assert_refused(&me, &token, MALFORMED).await;
    }
    assert_eq!(issuer.fetch_count(), 1);
    assert_still_serves_good_tokens(&issuer, &me).await;
}

// ---------------------------------------------------------------------------
// What is said and what is logged
// ---------------------------------------------------------------------------

#[tokio::test]
async fn rejections_never_echo_the_token_its_kid_or_claim_values() {
    // Attack: reflection — making the server repeat attacker-chosen bytes (XSS, log/header injection).
    let (issuer, me) = start().await;
    let marker = "ZZmarkerZZ";
    let tokens = [
        issuer.token().kid(&format!("{marker}-kid")).sign(),
        issuer.token().audience(format!("{marker}-org")).sign(),
        issuer
            .token()
            .issuer(&format!("https://{marker}.example"))
            .sign(),
        issuer.token().claim("sub", json!([marker])).sign(),
        issuer.token().claim("exp", marker).sign(),
    ];
    for token in &tokens {
        let seen = get_with_token(&me, token).await;
        assert_eq!(seen.status, 401, "{}", seen.body);
        assert_not_echoed(&seen, token);
        assert!(!seen.body.contains(marker), "{}", seen.body);
        let challenge = seen.www_authenticate.unwrap_or_default();
        assert!(!challenge.contains(marker), "{challenge}");
    }
    assert_still_serves_good_tokens(&issuer, &me).await;
}

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

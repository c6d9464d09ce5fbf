//! The other issuers end to end: OpenID Connect discovery, static keys
//! (`jwt_local`), several meinGPT organizations, configurable role claims,
//! `auth_time` max age, the `Claims<T>` extractor and the e-mail fallback,
//! through a real server on loopback — status, challenge, JSON body, and how
//! often discovery documents and key sets were fetched.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::common::answers::{
    BAD_SIGNATURE, EXPIRED, INVALID_CLAIM, STEP_UP_CHALLENGE, UNKNOWN_KEY, UNSUPPORTED_ALGORITHM,
    WRONG_AUDIENCE,
};
use crate::common::{Seen, app, get_with_token, serve};
use aws_lc_rs::encoding::AsDer;
use aws_lc_rs::rand::{SecureRandom, SystemRandom};
use aws_lc_rs::signature::{
    ECDSA_P256_SHA256_FIXED_SIGNING, ECDSA_P384_SHA384_FIXED_SIGNING, EcdsaKeyPair,
    EcdsaSigningAlgorithm, KeyPair,
};
use axum::routing::get;
use axum::{Json, Router};
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use jsonwebtoken::{EncodingKey, Header};
use meingpt_auth::testing::MockIssuer;
use meingpt_auth::{Algorithm, Claims, MeinGptAuth, MeinGptAuthBuilder, StaticKey};
use serde::Deserialize;
use serde_json::{Value, json};

/// The issuer and audience of the `jwt_local` (static key) tests.
const LOCAL_ISSUER: &str = "https://opengpts.example";
const LOCAL_AUDIENCE: &str = "my-api";

fn now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

/// An OIDC configuration for the mock issuer, accepting `api` and `second-api`.
fn oidc(issuer: &MockIssuer) -> MeinGptAuthBuilder {
    MeinGptAuth::oidc(issuer.issuer())
        .audience("api")
        .audience("second-api")
}

/// Serves the quickstart-like routes for `auth` and returns the base URL.
async fn serve_app(auth: &MeinGptAuth) -> String {
    serve(app(auth)).await
}

/// DER text as PEM with `label`, 64 characters a line.
fn pem(label: &str, der: &[u8]) -> String {
    let body = STANDARD.encode(der);
    let lines: Vec<&str> = body
        .as_bytes()
        .chunks(64)
        .map(|line| std::str::from_utf8(line).unwrap())
        .collect();
    format!(
        "-----BEGIN {label}-----\n{}\n-----END {label}-----\n",
        lines.join("\n")
    )
}

/// A fresh EC key: its PKCS#8 private key (for jsonwebtoken) and its public
/// key as a `-----BEGIN PUBLIC KEY-----` (SPKI) PEM.
fn ec_key(alg: &'static EcdsaSigningAlgorithm) -> (Vec<u8>, String) {
    let pair = EcdsaKeyPair::generate(alg).unwrap();
    let pkcs8 = pair.to_pkcs8v1().unwrap().as_ref().to_vec();
    let spki = pair.public_key().as_der().unwrap();
    (pkcs8, pem("PUBLIC KEY", spki.as_ref()))
}

/// One DER element: tag, definite length, content.
fn der(tag: u8, content: &[u8]) -> Vec<u8> {
    let len = content.len();
    let mut out = vec![tag];
    match len {
        0..=0x7f => out.push(len as u8),
        0x80..=0xff => out.extend([0x81, len as u8]),
        _ => out.extend([0x82, (len >> 8) as u8, len as u8]),
    }
    out.extend_from_slice(content);
    out
}

/// A PKCS#1 `RSAPublicKey` with a 1024-bit modulus and e = 65537.
fn rsa_1024_pkcs1() -> Vec<u8> {
    let mut modulus = vec![0u8; 129]; // leading zero: the top bit is set
    modulus[1..].fill(0xC5);
    modulus[128] |= 1;
    let content = [der(0x02, &modulus), der(0x02, &[0x01, 0x00, 0x01])].concat();
    der(0x30, &content)
}

/// 32 random bytes.
fn random_secret() -> Vec<u8> {
    let mut secret = vec![0u8; 32];
    SystemRandom::new().fill(&mut secret).unwrap();
    secret
}

/// The claims of a good `jwt_local` token, valid for an hour.
fn local_claims() -> Value {
    let now = now();
    json!({
        "iss": LOCAL_ISSUER,
        "aud": LOCAL_AUDIENCE,
        "sub": "local-user",
        "iat": now,
        "exp": now + 3600,
    })
}

/// A token over `claims` signed by jsonwebtoken with `alg` and `key`.
fn jwt(alg: Algorithm, key: &EncodingKey, claims: &Value) -> String {
    jsonwebtoken::encode(&Header::new(alg), claims, key).unwrap()
}

/// Asserts the RFC 9470 step-up answer for a maximum age of 300 s.
fn assert_step_up_required(seen: &Seen) {
    assert_eq!(seen.status, 401, "body: {}", seen.body);
    assert_eq!(seen.www_authenticate.as_deref(), Some(STEP_UP_CHALLENGE));
    assert_eq!(
        seen.json(),
        json!({
            "error": "insufficient_user_authentication",
            "error_description": "more recent authentication is required",
        })
    );
}

// --- 1. OpenID Connect discovery -------------------------------------------

#[tokio::test]
async fn oidc_discovery_finds_the_keys_and_accepts_every_configured_audience() {
    let issuer = MockIssuer::start().await;
    let auth = oidc(&issuer).build().unwrap();
    let base = serve_app(&auth).await;
    let me = format!("{base}/me");

    let second = get_with_token(&me, &issuer.token().audience("second-api").sign()).await;
    assert_eq!(second.status, 200, "{}", second.body);
    assert_eq!(second.json()["organization_id"], "second-api");
    assert_eq!(second.json()["iss"], issuer.issuer());

    let first = get_with_token(&me, &issuer.token().audience("api").sign()).await;
    assert_eq!(first.status, 200, "{}", first.body);
    assert_eq!(first.json()["organization_id"], "api");

    let both = issuer.token().audience(json!(["elsewhere", "second-api"]));
    assert_eq!(get_with_token(&me, &both.sign()).await.status, 200);

    // meinGPT's organization is not an audience of this OIDC configuration.
    get_with_token(&me, &issuer.token().sign())
        .await
        .assert_invalid_token(WRONG_AUDIENCE);
    get_with_token(&me, &issuer.token().audience("other-api").sign())
        .await
        .assert_invalid_token(WRONG_AUDIENCE);

    assert_eq!(issuer.discovery_count(), 1);
    assert_eq!(issuer.fetch_count(), 1);
}

#[tokio::test]
async fn oidc_roles_come_from_the_roles_claim_not_from_meingpts_role() {
    let issuer = MockIssuer::start().await;
    let base = serve_app(&oidc(&issuer).build().unwrap()).await;
    let admin = format!("{base}/admin");

    let with_roles = issuer
        .token()
        .audience("api")
        .without("role")
        .claim("roles", json!(["admin"]))
        .sign();
    let seen = get_with_token(&admin, &with_roles).await;
    assert_eq!((seen.status, seen.body.as_str()), (200, "admin area"));

    let meingpt_style = issuer.token().audience("api").role("admin").sign();
    let seen = get_with_token(&admin, &meingpt_style).await;
    assert_eq!(seen.status, 403, "{}", seen.body);
    assert_eq!(seen.json()["error"], "insufficient_scope");

    let seen = get_with_token(&format!("{base}/me"), &meingpt_style).await;
    assert_eq!(seen.status, 200);
    assert_eq!(seen.json()["roles"], json!([]));
    assert_eq!(seen.json()["role"], Value::Null);
}

#[tokio::test]
async fn an_oidc_user_without_meingpt_claims_gets_empty_roles_and_teams() {
    let issuer = MockIssuer::start().await;
    let base = serve_app(&oidc(&issuer).build().unwrap()).await;
    let token = issuer
        .token()
        .audience("api")
        .sub("oidc-user")
        .without("teams")
        .without("role")
        .without("organizationName")
        .sign();

    let seen = get_with_token(&format!("{base}/me"), &token).await;

    assert_eq!(seen.status, 200, "{}", seen.body);
    let user = seen.json();
    assert_eq!(user["sub"], "oidc-user");
    assert_eq!(user["roles"], json!([]));
    assert_eq!(user["role"], Value::Null);
    assert_eq!(user["teams"], json!([]));
    assert_eq!(user["organization_name"], Value::Null);
    assert_eq!(user["organization_id"], "api");
}

// --- 2. Discovery documents that must not be trusted ------------------------

#[tokio::test]
async fn a_discovery_document_naming_another_issuer_fails_preload_and_requests_get_503() {
    let issuer = MockIssuer::start().await;
    issuer.set_discovery(json!({
        "issuer": "https://evil.example",
        "jwks_uri": issuer.jwks_url(),
    }));
    let auth = oidc(&issuer).build().unwrap();

    let error = auth.preload().await.unwrap_err();
    assert!(error.to_string().contains("another issuer"), "{error}");
    assert_eq!(
        error.url(),
        format!("{}/.well-known/openid-configuration", issuer.issuer())
    );

    let base = serve_app(&auth).await;
    let token = issuer.token().audience("api").sign();
    let seen = get_with_token(&format!("{base}/me"), &token).await;

    assert_eq!(seen.status, 503, "{}", seen.body);
    let retry_after: u64 = seen
        .retry_after
        .as_deref()
        .expect("Retry-After")
        .parse()
        .unwrap();
    assert!((1..=5).contains(&retry_after), "Retry-After {retry_after}");
    assert_eq!(seen.www_authenticate, None);
    assert_eq!(seen.json()["error"], "temporarily_unavailable");
    // The JWKS the document names was never fetched, and the request, within
    // the back-off after the failed preload, did not ask for discovery again.
    assert_eq!(issuer.fetch_count(), 0);
    assert_eq!(issuer.discovery_count(), 1);
}

#[tokio::test]
async fn a_discovered_jwks_uri_on_plain_http_to_another_host_is_refused() {
    let issuer = MockIssuer::start().await;
    issuer.set_discovery(json!({
        "issuer": issuer.issuer(),
        "jwks_uri": "http://keys.example.com/jwks",
    }));
    let auth = oidc(&issuer).build().unwrap();

    let error = auth.preload().await.unwrap_err().to_string();

    assert!(error.contains("jwks_uri"), "{error}");
    assert!(
        error.contains("plain http:// is only allowed for loopback hosts"),
        "{error}"
    );
    assert_eq!(issuer.discovery_count(), 1);
    assert_eq!(issuer.fetch_count(), 0);
}

// --- 3. Algorithms ------------------------------------------------------------

#[tokio::test]
async fn configured_oidc_algorithms_refuse_others_before_any_fetch() {
    let issuer = MockIssuer::start().await;
    let auth = oidc(&issuer)
        .algorithms([Algorithm::RS256])
        .build()
        .unwrap();
    let base = serve_app(&auth).await;
    let me = format!("{base}/me");

    let ps256 = issuer.token().audience("api").sign_with(Algorithm::PS256);
    get_with_token(&me, &ps256)
        .await
        .assert_invalid_token(UNSUPPORTED_ALGORITHM);
    assert_eq!(issuer.discovery_count(), 0);
    assert_eq!(issuer.fetch_count(), 0);

    let rs256 = issuer.token().audience("api").sign();
    assert_eq!(get_with_token(&me, &rs256).await.status, 200);
}

#[tokio::test]
async fn without_configured_algorithms_only_those_the_discovery_document_lists_are_accepted() {
    // The mock's default document lists ["RS256"] only.
    let issuer = MockIssuer::start().await;
    let base = serve_app(&oidc(&issuer).build().unwrap()).await;
    let me = format!("{base}/me");

    let ps256 = issuer.token().audience("api").sign_with(Algorithm::PS256);
    get_with_token(&me, &ps256)
        .await
        .assert_invalid_token(UNSUPPORTED_ALGORITHM);

    let rs256 = issuer.token().audience("api").sign();
    assert_eq!(get_with_token(&me, &rs256).await.status, 200);
    assert_eq!(issuer.discovery_count(), 1);
    assert_eq!(issuer.fetch_count(), 1);
}

#[tokio::test]
async fn a_jwk_that_names_rs256_is_not_used_for_ps256_even_when_discovery_lists_it() {
    let issuer = MockIssuer::start().await;
    issuer.set_discovery(json!({
        "issuer": issuer.issuer(),
        "jwks_uri": issuer.jwks_url(),
        "id_token_signing_alg_values_supported": ["RS256", "PS256"],
    }));
    let base = serve_app(&oidc(&issuer).build().unwrap()).await;
    let me = format!("{base}/me");

    // The published key says "alg": "RS256" (RFC 7517 §4.4).
    let ps256 = issuer.token().audience("api").sign_with(Algorithm::PS256);
    get_with_token(&me, &ps256)
        .await
        .assert_invalid_token(UNKNOWN_KEY);
    let rs256 = issuer.token().audience("api").sign();
    assert_eq!(get_with_token(&me, &rs256).await.status, 200);
    assert_eq!(issuer.fetch_count(), 1);
}

// --- 4. jwt_local with an ES256 public key ------------------------------------

#[tokio::test]
async fn an_es256_pem_key_verifies_its_own_tokens_and_refuses_algorithm_confusion() {
    let (pkcs8, public_pem) = ec_key(&ECDSA_P256_SHA256_FIXED_SIGNING);
    let auth = MeinGptAuth::static_key(LOCAL_ISSUER, StaticKey::pem(Algorithm::ES256, &public_pem))
        .audience(LOCAL_AUDIENCE)
        .build()
        .unwrap();
    assert!(auth.preload().await.is_ok());
    let base = serve_app(&auth).await;
    let me = format!("{base}/me");
    let es256 = EncodingKey::from_ec_der(&pkcs8);

    let seen = get_with_token(&me, &jwt(Algorithm::ES256, &es256, &local_claims())).await;
    assert_eq!(seen.status, 200, "{}", seen.body);
    let user = seen.json();
    assert_eq!(user["sub"], "local-user");
    assert_eq!(user["iss"], LOCAL_ISSUER);
    assert_eq!(user["organization_id"], LOCAL_AUDIENCE);
    assert_eq!(user["roles"], json!([]));
    assert_eq!(user["teams"], json!([]));

    let mut expired = local_claims();
    expired["iat"] = json!(now() - 7200);
    expired["exp"] = json!(now() - 3600);
    get_with_token(&me, &jwt(Algorithm::ES256, &es256, &expired))
        .await
        .assert_invalid_token(EXPIRED);

    // The classic confusion: HS256 keyed with the public key's PEM text.
    let confused = EncodingKey::from_secret(public_pem.as_bytes());
    get_with_token(&me, &jwt(Algorithm::HS256, &confused, &local_claims()))
        .await
        .assert_invalid_token(UNSUPPORTED_ALGORITHM);

    let issuer = MockIssuer::start().await;
    let rs256 = issuer
        .token()
        .issuer(LOCAL_ISSUER)
        .audience(LOCAL_AUDIENCE)
        .sign();
    get_with_token(&me, &rs256)
        .await
        .assert_invalid_token(UNSUPPORTED_ALGORITHM);

    let (other_pkcs8, _) = ec_key(&ECDSA_P256_SHA256_FIXED_SIGNING);
    let other = EncodingKey::from_ec_der(&other_pkcs8);
    get_with_token(&me, &jwt(Algorithm::ES256, &other, &local_claims()))
        .await
        .assert_invalid_token(BAD_SIGNATURE);
    assert_eq!(issuer.fetch_count(), 0);
}

#[tokio::test]
async fn an_rsa_pem_key_verifies_the_issuers_tokens_without_any_fetch() {
    let issuer = MockIssuer::start().await;
    let public_pem = pem("RSA PUBLIC KEY", &issuer.public_key_der());
    let auth = MeinGptAuth::static_key(
        issuer.issuer(),
        StaticKey::pem(Algorithm::RS256, public_pem),
    )
    .audience(issuer.organization())
    .build()
    .unwrap();
    let base = serve_app(&auth).await;

    let seen = get_with_token(&format!("{base}/me"), &issuer.token().sign()).await;

    assert_eq!(seen.status, 200, "{}", seen.body);
    assert_eq!(seen.json()["organization_id"], issuer.organization());
    assert_eq!(issuer.fetch_count(), 0);
}

#[tokio::test]
async fn pem_keys_that_do_not_fit_their_algorithm_fail_at_build_naming_static_key() {
    let issuer = MockIssuer::start().await;
    let rsa_pem = pem("RSA PUBLIC KEY", &issuer.public_key_der());
    let (_, ec_pem) = ec_key(&ECDSA_P256_SHA256_FIXED_SIGNING);
    let (_, p384_pem) = ec_key(&ECDSA_P384_SHA384_FIXED_SIGNING);
    let weak_pem = pem("RSA PUBLIC KEY", &rsa_1024_pkcs1());

    let cases = [
        (
            "an RSA key for ES256",
            StaticKey::pem(Algorithm::ES256, &rsa_pem),
        ),
        (
            "an EC key for RS256",
            StaticKey::pem(Algorithm::RS256, &ec_pem),
        ),
        (
            "an EC key for PS256",
            StaticKey::pem(Algorithm::PS256, &ec_pem),
        ),
        (
            "a P-384 key for ES256",
            StaticKey::pem(Algorithm::ES256, &p384_pem),
        ),
        (
            "an RSA 1024-bit key",
            StaticKey::pem(Algorithm::RS256, &weak_pem),
        ),
        (
            "text that is no key",
            StaticKey::pem(Algorithm::ES256, "not a key"),
        ),
    ];
    for (case, key) in cases {
        let error = MeinGptAuth::static_key(LOCAL_ISSUER, key)
            .audience(LOCAL_AUDIENCE)
            .build()
            .expect_err(case);
        assert_eq!(error.setting(), "static_key", "{case}: {error}");
        assert!(
            error.to_string().starts_with("static_key is invalid"),
            "{case}: {error}"
        );
    }
    let weak = MeinGptAuth::static_key(LOCAL_ISSUER, StaticKey::pem(Algorithm::RS256, &weak_pem))
        .audience(LOCAL_AUDIENCE)
        .build()
        .unwrap_err()
        .to_string();
    assert!(weak.contains("2048"), "{weak}");

    // The same keys build with the algorithms they fit.
    for key in [
        StaticKey::pem(Algorithm::RS256, &rsa_pem),
        StaticKey::pem(Algorithm::PS256, &rsa_pem),
        StaticKey::pem(Algorithm::ES256, &ec_pem),
        StaticKey::pem(Algorithm::ES384, &p384_pem),
    ] {
        let algorithm = key.algorithm();
        assert!(
            MeinGptAuth::static_key(LOCAL_ISSUER, key)
                .audience(LOCAL_AUDIENCE)
                .build()
                .is_ok(),
            "{algorithm:?}"
        );
    }
}

// --- 5. jwt_local with an HS256 secret ----------------------------------------

#[tokio::test]
async fn an_hs256_secret_verifies_tokens_signed_with_it_and_no_others() {
    let secret = random_secret();
    let auth = MeinGptAuth::static_key(LOCAL_ISSUER, StaticKey::secret(Algorithm::HS256, &secret))
        .audience(LOCAL_AUDIENCE)
        .build()
        .unwrap();
    let base = serve_app(&auth).await;
    let me = format!("{base}/me");

    let good = jwt(
        Algorithm::HS256,
        &EncodingKey::from_secret(&secret),
        &local_claims(),
    );
    let seen = get_with_token(&me, &good).await;
    assert_eq!(seen.status, 200, "{}", seen.body);
    assert_eq!(seen.json()["sub"], "local-user");
    assert_eq!(seen.json()["roles"], json!([]));
    assert_eq!(seen.json()["teams"], json!([]));

    let forged = jwt(
        Algorithm::HS256,
        &EncodingKey::from_secret(&random_secret()),
        &local_claims(),
    );
    get_with_token(&me, &forged)
        .await
        .assert_invalid_token(BAD_SIGNATURE);

    let hs512 = jwt(
        Algorithm::HS512,
        &EncodingKey::from_secret(&secret),
        &local_claims(),
    );
    get_with_token(&me, &hs512)
        .await
        .assert_invalid_token(UNSUPPORTED_ALGORITHM);
}

#[test]
fn an_hs_secret_shorter_than_its_hash_or_made_of_pem_text_fails_at_build() {
    let error =
        MeinGptAuth::static_key(LOCAL_ISSUER, StaticKey::secret(Algorithm::HS256, [7u8; 31]))
            .audience(LOCAL_AUDIENCE)
            .build()
            .unwrap_err();
    assert_eq!(error.setting(), "static_key");
    assert!(error.to_string().contains("32 bytes"), "{error}");

    let error =
        MeinGptAuth::static_key(LOCAL_ISSUER, StaticKey::secret(Algorithm::HS512, [7u8; 32]))
            .audience(LOCAL_AUDIENCE)
            .build()
            .unwrap_err();
    assert_eq!(error.setting(), "static_key");

    // A public key's PEM text is no HMAC secret (the key-confusion attack).
    let (_, ec_pem) = ec_key(&ECDSA_P256_SHA256_FIXED_SIGNING);
    let error = MeinGptAuth::static_key(LOCAL_ISSUER, StaticKey::secret(Algorithm::HS256, ec_pem))
        .audience(LOCAL_AUDIENCE)
        .build()
        .unwrap_err();
    assert_eq!(error.setting(), "static_key");

    assert!(
        MeinGptAuth::static_key(LOCAL_ISSUER, StaticKey::secret(Algorithm::HS256, [7u8; 32]))
            .audience(LOCAL_AUDIENCE)
            .build()
            .is_ok()
    );
}

// --- 6. Role claims -------------------------------------------------------------

#[tokio::test]
async fn roles_from_a_configured_claim_as_array_or_comma_separated_string() {
    let issuer = MockIssuer::start().await;
    let auth = issuer
        .auth()
        .role_claim("groups")
        .roles_case_insensitive(true)
        .roles_comma_separated(true)
        .build()
        .unwrap();
    let base = serve_app(&auth).await;
    let admin = format!("{base}/admin");

    let array = issuer.token().claim("groups", json!(["Admin", "x"])).sign();
    assert_eq!(get_with_token(&admin, &array).await.status, 200);
    let seen = get_with_token(&format!("{base}/me"), &array).await;
    assert_eq!(seen.json()["roles"], json!(["Admin", "x"]));
    assert_eq!(seen.json()["role"], "Admin");

    let comma = issuer.token().claim("groups", "x, admin").sign();
    assert_eq!(get_with_token(&admin, &comma).await.status, 200);
    let seen = get_with_token(&format!("{base}/me"), &comma).await;
    assert_eq!(seen.json()["roles"], json!(["x", "admin"]));

    // meinGPT's own `role` claim no longer counts.
    let role_only = issuer.token().role("admin").sign();
    assert_eq!(get_with_token(&admin, &role_only).await.status, 403);

    let wrong_type = issuer.token().claim("groups", 7).sign();
    get_with_token(&admin, &wrong_type)
        .await
        .assert_invalid_token(INVALID_CLAIM);
}

#[tokio::test]
async fn role_matching_ignores_case_only_when_configured() {
    let issuer = MockIssuer::start().await;
    let loose = serve_app(&issuer.auth().roles_case_insensitive(true).build().unwrap()).await;
    let strict = serve_app(&issuer.auth().build().unwrap()).await;
    let shouting = issuer.token().role("ADMIN").sign();

    assert_eq!(
        get_with_token(&format!("{loose}/admin"), &shouting)
            .await
            .status,
        200
    );
    let seen = get_with_token(&format!("{strict}/admin"), &shouting).await;
    assert_eq!(seen.status, 403, "{}", seen.body);
    assert_eq!(seen.json()["error"], "insufficient_scope");

    let groups = serve_app(&issuer.auth().role_claim("groups").build().unwrap()).await;
    let capitalised = issuer.token().claim("groups", json!(["Admin"])).sign();
    assert_eq!(
        get_with_token(&format!("{groups}/admin"), &capitalised)
            .await
            .status,
        403
    );
}

// --- 7. auth_time ---------------------------------------------------------------

#[tokio::test]
async fn a_recent_sign_in_passes_the_maximum_authentication_age() {
    let issuer = MockIssuer::start().await;
    let auth = issuer
        .auth()
        .max_auth_age(Duration::from_secs(300))
        .build()
        .unwrap();
    let base = serve_app(&auth).await;

    let token = issuer.token().claim("auth_time", now() - 60).sign();
    let seen = get_with_token(&format!("{base}/me"), &token).await;

    assert_eq!(seen.status, 200, "{}", seen.body);
}

#[tokio::test]
async fn an_old_or_missing_sign_in_asks_for_step_up_authentication() {
    let issuer = MockIssuer::start().await;
    let auth = issuer
        .auth()
        .max_auth_age(Duration::from_secs(300))
        .build()
        .unwrap();
    let base = serve_app(&auth).await;
    let me = format!("{base}/me");

    let old = issuer.token().claim("auth_time", now() - 3600).sign();
    assert_step_up_required(&get_with_token(&me, &old).await);

    // Beyond the maximum age plus the 30 s leeway.
    let just_too_old = issuer.token().claim("auth_time", now() - 400).sign();
    assert_step_up_required(&get_with_token(&me, &just_too_old).await);

    let missing = issuer.token().without("auth_time").sign();
    assert_step_up_required(&get_with_token(&me, &missing).await);

    let text = issuer
        .token()
        .claim("auth_time", (now() - 60).to_string())
        .sign();
    get_with_token(&me, &text)
        .await
        .assert_invalid_token(INVALID_CLAIM);
    assert_eq!(issuer.fetch_count(), 1);
}

#[tokio::test]
async fn without_a_maximum_age_auth_time_is_not_required() {
    let issuer = MockIssuer::start().await;
    let base = serve_app(&issuer.auth().build().unwrap()).await;

    let old = issuer.token().claim("auth_time", now() - 86_400).sign();
    assert_eq!(
        get_with_token(&format!("{base}/me"), &old).await.status,
        200
    );
}

// --- 8. Several organizations ---------------------------------------------------

#[tokio::test]
async fn each_organization_is_verified_with_its_own_jwks() {
    let issuer = MockIssuer::for_organizations(&["org-a", "org-b"]).await;
    let auth = MeinGptAuth::builder()
        .issuer(issuer.issuer())
        .organizations(["org-a", "org-b"])
        .build()
        .unwrap();
    let base = serve_app(&auth).await;
    let me = format!("{base}/me");

    let seen = get_with_token(&me, &issuer.token_for("org-a").sign()).await;
    assert_eq!(seen.status, 200, "{}", seen.body);
    assert_eq!(seen.json()["organization_id"], "org-a");

    let seen = get_with_token(&me, &issuer.token_for("org-b").sign()).await;
    assert_eq!(seen.status, 200, "{}", seen.body);
    assert_eq!(seen.json()["organization_id"], "org-b");

    for _ in 0..3 {
        assert_eq!(
            get_with_token(&me, &issuer.token_for("org-a").sign())
                .await
                .status,
            200
        );
        assert_eq!(
            get_with_token(&me, &issuer.token_for("org-b").sign())
                .await
                .status,
            200
        );
    }
    assert_eq!(issuer.fetch_count_for("org-a"), 1);
    assert_eq!(issuer.fetch_count_for("org-b"), 1);

    // aud org-a chooses org-a's JWKS. The token names org-b's kid, which
    // org-a's key set does not hold; org-a's keys were fetched a moment ago,
    // so the unknown-kid cooldown (30 s) allows no refetch: the key is
    // unknown, and org-b's key is never consulted.
    let cross = issuer.token_for("org-b").audience("org-a").sign();
    get_with_token(&me, &cross)
        .await
        .assert_invalid_token(UNKNOWN_KEY);
    // Without a kid, org-a's only key is tried, and the signature fails.
    let cross = issuer
        .token_for("org-b")
        .audience("org-a")
        .without_header("kid")
        .sign();
    get_with_token(&me, &cross)
        .await
        .assert_invalid_token(BAD_SIGNATURE);
    assert_eq!(issuer.fetch_count_for("org-a"), 1);
    assert_eq!(issuer.fetch_count_for("org-b"), 1);
}

#[tokio::test]
async fn a_token_for_an_unlisted_organization_is_refused_without_any_fetch() {
    let issuer = MockIssuer::for_organizations(&["org-a", "org-b"]).await;
    let auth = MeinGptAuth::builder()
        .issuer(issuer.issuer())
        .organizations(["org-a", "org-b"])
        .build()
        .unwrap();
    let base = serve_app(&auth).await;

    let token = issuer.token().audience("org-c").sign();
    get_with_token(&format!("{base}/me"), &token)
        .await
        .assert_invalid_token(UNKNOWN_KEY);

    assert_eq!(issuer.fetch_count(), 0);
}

#[tokio::test]
async fn preload_fetches_every_organizations_keys() {
    let issuer = MockIssuer::for_organizations(&["org-a", "org-b"]).await;
    let auth = MeinGptAuth::builder()
        .issuer(issuer.issuer())
        .organizations(["org-a", "org-b"])
        .build()
        .unwrap();

    auth.preload().await.unwrap();

    assert_eq!(issuer.fetch_count_for("org-a"), 1);
    assert_eq!(issuer.fetch_count_for("org-b"), 1);
    let base = serve_app(&auth).await;
    let token = issuer.token_for("org-b").sign();
    assert_eq!(
        get_with_token(&format!("{base}/me"), &token).await.status,
        200
    );
    assert_eq!(issuer.fetch_count(), 2);
}

// --- 9. Claims<T> ---------------------------------------------------------------

#[derive(Debug, Deserialize)]
struct MyClaims {
    sub: String,
    tenant: String,
}

async fn tenant(Claims(claims): Claims<MyClaims>) -> Json<Value> {
    Json(json!({ "sub": claims.sub, "tenant": claims.tenant }))
}

#[tokio::test]
async fn custom_claims_reach_the_handler_as_the_users_own_type() {
    let issuer = MockIssuer::start().await;
    let auth = issuer.auth().build().unwrap();
    let base = serve(
        Router::new()
            .route("/tenant", get(tenant))
            .layer(auth.layer()),
    )
    .await;
    let url = format!("{base}/tenant");

    let token = issuer.token().sub("u-9").claim("tenant", "acme").sign();
    let seen = get_with_token(&url, &token).await;
    assert_eq!(seen.status, 200, "{}", seen.body);
    assert_eq!(seen.json(), json!({"sub": "u-9", "tenant": "acme"}));

    let without = issuer.token().sub("u-9").sign();
    get_with_token(&url, &without)
        .await
        .assert_invalid_token(INVALID_CLAIM);

    let wrong_type = issuer.token().claim("tenant", 42).sign();
    get_with_token(&url, &wrong_type)
        .await
        .assert_invalid_token(INVALID_CLAIM);
}

// --- 10. E-mail fallback ----------------------------------------------------------

#[tokio::test]
async fn email_falls_back_to_upn_then_preferred_username_when_configured() {
    let issuer = MockIssuer::start().await;
    let base = serve_app(&oidc(&issuer).email_fallback(true).build().unwrap()).await;
    let me = format!("{base}/me");

    let upn = issuer
        .token()
        .audience("api")
        .without("email")
        .claim("upn", "ada@corp.example")
        .claim("preferred_username", "ada.l@corp.example")
        .sign();
    let seen = get_with_token(&me, &upn).await;
    assert_eq!(seen.status, 200, "{}", seen.body);
    assert_eq!(seen.json()["email"], "ada@corp.example");

    let preferred = issuer
        .token()
        .audience("api")
        .without("email")
        .claim("preferred_username", "ada.l@corp.example")
        .sign();
    assert_eq!(
        get_with_token(&me, &preferred).await.json()["email"],
        "ada.l@corp.example"
    );

    let email_first = issuer
        .token()
        .audience("api")
        .claim("upn", "ada@corp.example")
        .sign();
    assert_eq!(
        get_with_token(&me, &email_first).await.json()["email"],
        "ada@example.com"
    );

    let none = issuer.token().audience("api").without("email").sign();
    assert_eq!(
        get_with_token(&me, &none).await.json()["email"],
        Value::Null
    );
}

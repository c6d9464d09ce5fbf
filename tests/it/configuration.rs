//! Configuration as a person meets it: the quickstart binary started with
//! environment variables, the one line it prints when they cannot work, and
//! what a working configuration then accepts.
//!
//! Cargo builds examples for a plain `cargo test`; when only this module is
//! selected (`cargo test --test it configuration`) build the example first:
//! `cargo build --all-features --example quickstart`.

use std::net::{Ipv4Addr, SocketAddr};
use std::time::{Duration, SystemTime};

use crate::common::example::{Running, command, example_binary, free_port};
use aws_lc_rs::encoding::AsDer;
use aws_lc_rs::rand::{SecureRandom, SystemRandom};
use aws_lc_rs::signature::{
    ECDSA_P256_SHA256_FIXED_SIGNING, ECDSA_P384_SHA384_FIXED_SIGNING, EcdsaKeyPair,
    EcdsaSigningAlgorithm, KeyPair,
};
use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use meingpt_auth::testing::MockIssuer;
use meingpt_auth::{MeinGptAuth, StaticKey};
use serde_json::json;

const ISSUER: &str = "https://opengpts.example";
const AUDIENCE: &str = "my-api";

fn quickstart(vars: &[(&str, &str)]) -> std::process::Command {
    command(
        &example_binary("quickstart", &["examples/quickstart.rs"]),
        vars,
    )
}

/// Runs the quickstart with `vars`, asserts it refuses them at once with one
/// stderr line and without listening, and returns that line.
fn refusal(vars: &[(&str, &str)]) -> String {
    let mut command = quickstart(vars);
    command.env("LISTEN_ADDR", "127.0.0.1:0");
    let mut running = Running::spawn(command);
    let status = running.wait_exit();
    let stdout = running.read_to_end().join("\n");
    let stderr = running.stderr();
    assert!(!status.success(), "{vars:?}: exited with {status}");
    assert!(!stdout.contains("listening"), "{vars:?}: {stdout}");
    let lines: Vec<&str> = stderr.lines().collect();
    assert_eq!(lines.len(), 1, "{vars:?}: not one line: {stderr:?}");
    lines[0].to_owned()
}

/// The quickstart configured with `vars` on a free port, once it serves.
fn start(vars: &[(&str, &str)]) -> (Running, String) {
    let listen = format!("127.0.0.1:{}", free_port());
    let mut all = vec![("LISTEN_ADDR", listen.as_str())];
    all.extend_from_slice(vars);
    let mut running = Running::spawn(quickstart(&all));
    running.read_until(|seen| {
        seen.iter()
            .any(|line| line.contains("Verifying tokens from the configured issuer"))
    });
    (running, format!("http://{listen}"))
}

async fn status(url: &str, token: &str) -> (u16, String) {
    let response = reqwest::Client::new()
        .get(url)
        .bearer_auth(token)
        .timeout(Duration::from_secs(10))
        .send()
        .await
        .unwrap_or_else(|e| panic!("GET {url}: {e}"));
    let status = response.status().as_u16();
    (status, response.text().await.unwrap())
}

/// A `jwt_local` configuration with `alg` and the key variable `key`.
fn local(alg: &'static str, key: &str) -> Vec<(&'static str, String)> {
    vec![
        ("AUTH_TYPE", "jwt_local".to_owned()),
        ("JWT_ISS", ISSUER.to_owned()),
        ("JWT_AUD", AUDIENCE.to_owned()),
        ("JWT_ALG", alg.to_owned()),
        ("JWT_DECODE_KEY_B64", key.to_owned()),
    ]
}

fn borrowed<'a>(vars: &'a [(&'static str, String)]) -> Vec<(&'static str, &'a str)> {
    vars.iter()
        .map(|(name, value)| (*name, value.as_str()))
        .collect()
}

/// DER as PEM with `label`, 64 characters a line.
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

/// A fresh EC key: its PKCS#8 private key DER and its public key as SPKI PEM.
fn ec_key(alg: &'static EcdsaSigningAlgorithm) -> (Vec<u8>, String) {
    let pair = EcdsaKeyPair::generate(alg).unwrap();
    let pkcs8 = pair.to_pkcs8v1().unwrap().as_ref().to_vec();
    let spki = pair.public_key().as_der().unwrap();
    (pkcs8, pem("PUBLIC KEY", spki.as_ref()))
}

fn now() -> u64 {
    SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

#[test]
fn a_relative_jwks_url_asks_for_an_absolute_https_url() {
    assert_eq!(
        refusal(&[("MEINGPT_ORG_ID", "org"), ("MEINGPT_JWKS_URL", "not-a-url")]),
        "error: MEINGPT_JWKS_URL is invalid: expected an absolute https:// URL such as \
         https://app.meingpt.com (http:// only for loopback hosts), found a relative URL (no scheme)"
    );
}

#[test]
fn a_p256_key_for_es384_names_both_curves() {
    let (_, public) = ec_key(&ECDSA_P256_SHA256_FIXED_SIGNING);
    let vars = local("ES384", &STANDARD.encode(&public));
    assert_eq!(
        refusal(&borrowed(&vars)),
        "error: JWT_DECODE_KEY_B64 is invalid: ES384 needs an EC P-384 public key in PEM, \
         found an EC P-256 public key"
    );
}

#[tokio::test]
async fn a_key_of_the_wrong_type_names_the_expected_and_the_found_type() {
    let (pkcs8, public) = ec_key(&ECDSA_P384_SHA384_FIXED_SIGNING);
    let rsa_wanted = local("RS256", &STANDARD.encode(&public));
    assert_eq!(
        refusal(&borrowed(&rsa_wanted)),
        "error: JWT_DECODE_KEY_B64 is invalid: RS256 needs an RSA public key in PEM, \
         found an EC P-384 public key"
    );

    let private = pem("PRIVATE KEY", &pkcs8);
    let encoded = STANDARD.encode(&private);
    let private_given = local("ES384", &encoded);
    let line = refusal(&borrowed(&private_given));
    assert_eq!(
        line,
        "error: JWT_DECODE_KEY_B64 is invalid: ES384 needs an EC P-384 public key in PEM, \
         found an EC P-384 private key (give the public key: openssl pkey -pubout)"
    );
    assert!(!line.contains(&encoded[30..60]), "{line}");

    let issuer = MockIssuer::start().await;
    let rsa = pem("RSA PUBLIC KEY", &issuer.public_key_der());
    let ec_wanted = local("ES256", &STANDARD.encode(&rsa));
    assert_eq!(
        refusal(&borrowed(&ec_wanted)),
        "error: JWT_DECODE_KEY_B64 is invalid: ES256 needs an EC P-256 public key in PEM, \
         found an RSA public key"
    );
    let ed_wanted = local("EdDSA", &STANDARD.encode(&rsa));
    assert_eq!(
        refusal(&borrowed(&ed_wanted)),
        "error: JWT_DECODE_KEY_B64 is invalid: EdDSA needs an OKP (Ed25519) public key in PEM, \
         found an RSA public key"
    );

    let not_pem = local("RS256", &STANDARD.encode("not a key"));
    assert_eq!(
        refusal(&borrowed(&not_pem)),
        "error: JWT_DECODE_KEY_B64 is invalid: RS256 needs an RSA public key in PEM, \
         found no PEM key (no -----BEGIN line)"
    );
}

#[test]
fn a_pem_key_pasted_without_base64_says_base64_is_expected() {
    let (_, public) = ec_key(&ECDSA_P256_SHA256_FIXED_SIGNING);
    let vars = local("ES256", &public);
    assert_eq!(
        refusal(&borrowed(&vars)),
        "error: JWT_DECODE_KEY_B64 is invalid: expected the base64 of a PEM key, found the PEM \
         text itself; set it to the output of `base64 -w0 public.pem`"
    );
    let vars = local("ES256", "%%%%");
    assert_eq!(
        refusal(&borrowed(&vars)),
        "error: JWT_DECODE_KEY_B64 is invalid: it is not base64: expected standard or URL-safe \
         base64 (padding optional) of a PEM public key, or of the secret for HS*"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_url_safe_base64_key_without_padding_is_accepted() {
    let (pkcs8, public) = ec_key(&ECDSA_P256_SHA256_FIXED_SIGNING);
    let encoded = URL_SAFE_NO_PAD.encode(&public);
    let vars = local("ES256", &encoded);
    let (_running, base) = start(&borrowed(&vars));

    let now = now();
    let claims =
        json!({ "iss": ISSUER, "aud": AUDIENCE, "sub": "ec-user", "iat": now, "exp": now + 600 });
    let token = jsonwebtoken::encode(
        &Header::new(Algorithm::ES256),
        &claims,
        &EncodingKey::from_ec_der(&pkcs8),
    )
    .unwrap();
    let (status, body) = status(&format!("{base}/me"), &token).await;
    assert_eq!(status, 200, "{body}");
    assert!(body.contains("\"sub\":\"ec-user\""), "{body}");
}

#[tokio::test(flavor = "multi_thread")]
async fn jwt_role_claim_role_lets_an_opengpts_admin_in() {
    let mut secret = [0u8; 32];
    SystemRandom::new().fill(&mut secret).unwrap();
    let encoded = STANDARD.encode(secret);
    let now = now();
    let claims = json!({
        "iss": ISSUER, "aud": AUDIENCE, "sub": "opengpts-admin", "role": "admin",
        "iat": now, "exp": now + 600,
    });
    let token = jsonwebtoken::encode(
        &Header::new(Algorithm::HS256),
        &claims,
        &EncodingKey::from_secret(&secret),
    )
    .unwrap();

    // Without JWT_ROLE_CLAIM roles come from `roles`: the admin is refused.
    let vars = local("HS256", &encoded);
    let (running, base) = start(&borrowed(&vars));
    assert_eq!(status(&format!("{base}/admin"), &token).await.0, 403);
    drop(running);

    let mut vars = local("HS256", &encoded);
    vars.push(("JWT_ROLE_CLAIM", "role".to_owned()));
    let (_running, base) = start(&borrowed(&vars));
    let (code, body) = status(&format!("{base}/admin"), &token).await;
    assert_eq!(code, 200, "{body}");
}

#[test]
fn variables_without_effect_are_refused_by_name() {
    let jwt_without_auth_type = |name: &str| {
        format!(
            "error: {name} is invalid: has no effect without AUTH_TYPE (jwt_oidc or jwt_local); \
             set AUTH_TYPE, or remove it for meinGPT mode (MEINGPT_ORG_ID)"
        )
    };
    for name in [
        "JWT_AUD",
        "JWT_ALG",
        "JWT_ISS",
        "JWT_DECODE_KEY_B64",
        "JWT_ROLE_CLAIM",
    ] {
        assert_eq!(
            refusal(&[("MEINGPT_ORG_ID", "org"), (name, "x")]),
            jwt_without_auth_type(name)
        );
    }
    assert_eq!(
        refusal(&[("JWT_AUD", "my-api")]),
        jwt_without_auth_type("JWT_AUD")
    );
    assert_eq!(
        refusal(&[
            ("MEINGPT_ORG_ID", "org-a,org-b"),
            ("MEINGPT_JWKS_URL", "https://meingpt.example.com/jwks"),
        ]),
        "error: MEINGPT_JWKS_URL is invalid: has no effect with 2 organizations in \
         MEINGPT_ORG_ID (each one's JWKS URL is derived from MEINGPT_ISSUER); remove it, or set \
         one organization"
    );
    for name in ["MEINGPT_ISSUER", "MEINGPT_JWKS_URL"] {
        assert_eq!(
            refusal(&[(name, "https://meingpt.example.com")]),
            format!(
                "error: {name} is invalid: has no effect without MEINGPT_ORG_ID; set \
                 MEINGPT_ORG_ID to your organization id"
            )
        );
    }
    assert_eq!(
        refusal(&[
            ("AUTH_TYPE", "jwt_oidc"),
            ("JWT_ISS", "https://id.example.com"),
            ("JWT_AUD", "my-api"),
            ("JWT_DECODE_KEY_B64", "c2VjcmV0"),
        ]),
        "error: JWT_DECODE_KEY_B64 is invalid: has no effect with AUTH_TYPE=jwt_oidc (keys come \
         from the issuer's JWKS); remove it, or use AUTH_TYPE=jwt_local"
    );
    // Beside another issuer, meinGPT's variables still need the organization.
    assert_eq!(
        refusal(&[
            ("MEINGPT_ISSUER", "https://meingpt.example.com"),
            ("AUTH_TYPE", "jwt_oidc"),
            ("JWT_ISS", "https://id.example.com"),
            ("JWT_AUD", "my-api"),
        ]),
        "error: MEINGPT_ISSUER is invalid: has no effect without MEINGPT_ORG_ID; set \
         MEINGPT_ORG_ID to your organization id"
    );
}

#[test]
fn meingpt_and_another_issuer_with_one_issuer_url_are_refused_by_name() {
    assert_eq!(
        refusal(&[
            ("MEINGPT_ORG_ID", "org"),
            ("MEINGPT_ISSUER", "https://id.example.com"),
            ("AUTH_TYPE", "jwt_oidc"),
            ("JWT_ISS", "https://id.example.com"),
            ("JWT_AUD", "my-api"),
        ]),
        "error: JWT_ISS is invalid: another configuration already has this issuer; one issuer \
         takes one configuration (give it several audiences instead)"
    );
}

#[test]
fn a_missing_jwt_local_setting_says_what_to_set() {
    assert_eq!(
        refusal(&[
            ("AUTH_TYPE", "jwt_local"),
            ("JWT_ISS", ISSUER),
            ("JWT_AUD", AUDIENCE),
            ("JWT_ALG", "ES256"),
        ]),
        "error: JWT_DECODE_KEY_B64 is not set: AUTH_TYPE=jwt_local needs the base64 of a PEM \
         public key (base64 -w0 public.pem), or of the secret for HS*"
    );
}

#[test]
fn the_builder_names_the_curve_of_a_static_key_too() {
    let (_, public) = ec_key(&ECDSA_P384_SHA384_FIXED_SIGNING);
    let err = MeinGptAuth::static_key(ISSUER, StaticKey::pem(Algorithm::ES256, &public))
        .audience(AUDIENCE)
        .build()
        .unwrap_err();
    assert_eq!(err.setting(), "static_key");
    assert_eq!(
        err.to_string(),
        "static_key is invalid: ES256 needs an EC P-256 public key in PEM, found an EC P-384 \
         public key"
    );
}

#[tokio::test]
async fn a_mock_issuer_bound_to_a_chosen_address_serves_its_keys_there() {
    let port = free_port();
    let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
    let issuer = MockIssuer::bind(addr).await.unwrap();
    assert_eq!(issuer.addr(), addr);
    assert_eq!(issuer.issuer(), format!("http://127.0.0.1:{port}"));

    let auth = issuer.auth().build().unwrap();
    let user = auth
        .verify(&issuer.token().sub("bound").sign())
        .await
        .unwrap();
    assert_eq!(user.sub(), "bound");
    assert_eq!(issuer.fetch_count(), 1);

    // The address is taken now: a second issuer there is an error, not a panic.
    let taken = MockIssuer::bind(addr).await.unwrap_err();
    assert_eq!(taken.kind(), std::io::ErrorKind::AddrInUse);

    let public = SocketAddr::from((Ipv4Addr::UNSPECIFIED, 0));
    let refused = MockIssuer::bind(public).await.unwrap_err();
    assert_eq!(refused.kind(), std::io::ErrorKind::InvalidInput);
    assert!(
        refused.to_string().contains("not a loopback address"),
        "{refused}"
    );
}

#[tokio::test]
async fn a_mock_issuer_for_several_organizations_binds_a_chosen_address() {
    let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, 0));
    let issuer = MockIssuer::bind_for_organizations(addr, &["org-a", "org-b"])
        .await
        .unwrap();
    let auth = MeinGptAuth::builder()
        .issuer(issuer.issuer())
        .organizations(["org-a", "org-b"])
        .build()
        .unwrap();
    let token = issuer.token_for("org-b").sign();
    assert_eq!(
        auth.verify(&token).await.unwrap().organization_id(),
        "org-b"
    );
    assert_eq!(issuer.fetch_count_for("org-b"), 1);
    assert_eq!(issuer.fetch_count_for("org-a"), 0);
}

//! The CustomGPT token minting example as a user runs it: the compiled
//! binary, a private key from a PEM file, and the minted tokens checked with
//! the public key.
//!
//! Cargo builds examples for a plain `cargo test`; when only this test is
//! selected (`cargo test --test it customgpt_jwt`) build the example first:
//! `cargo build --all-features --example customgpt_jwt`.

use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::common::example::{Running, assert_refused, command, example_binary, free_port};
use aws_lc_rs::encoding::AsDer;
use aws_lc_rs::rsa::KeySize;
use aws_lc_rs::signature::{KeyPair, RsaKeyPair};
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use meingpt_auth::testing::MockIssuer;
use serde_json::{Value, json};

fn binary() -> PathBuf {
    example_binary("customgpt_jwt", &["examples/customgpt_jwt.rs"])
}

/// A PEM file that is removed when dropped.
pub(crate) struct KeyFile(pub(crate) PathBuf);

impl Drop for KeyFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

fn pem(label: &str, der: &[u8]) -> String {
    let body = STANDARD.encode(der);
    let lines: Vec<&str> = body
        .as_bytes()
        .chunks(64)
        .map(|chunk| std::str::from_utf8(chunk).unwrap())
        .collect();
    format!(
        "-----BEGIN {label}-----\n{}\n-----END {label}-----\n",
        lines.join("\n")
    )
}

/// A new RSA-2048 key: its private half in a PEM file, and the public half
/// to verify with.
pub(crate) fn key_file(name: &str) -> (KeyFile, DecodingKey) {
    let pair = RsaKeyPair::generate(KeySize::Rsa2048).unwrap();
    let path = Path::new(env!("CARGO_TARGET_TMPDIR"))
        .join(format!("customgpt-{name}-{}.pem", std::process::id()));
    std::fs::write(&path, pem("PRIVATE KEY", pair.as_der().unwrap().as_ref())).unwrap();
    // PKCS#1 RSAPublicKey DER.
    let public = DecodingKey::from_rsa_der(pair.public_key().as_ref());
    (KeyFile(path), public)
}

/// The example with the given key, verifying `issuer`'s tokens.
fn start(issuer: &MockIssuer, key: &Path) -> (Running, String) {
    let listen = format!("127.0.0.1:{}", free_port());
    let key = key.to_str().unwrap();
    let mut running = Running::spawn(command(
        &binary(),
        &[
            ("LISTEN_ADDR", &listen),
            ("MEINGPT_ORG_ID", issuer.organization()),
            ("MEINGPT_ISSUER", issuer.issuer()),
            ("CUSTOMGPT_PRIVATE_KEY_PEM", key),
            ("CUSTOMGPT_AUDIENCE", "customgpt-test"),
        ],
    ));
    running.read_until(|seen| {
        seen.iter()
            .any(|line| line.contains("Verifying tokens from the configured issuer"))
    });
    (running, format!("http://{listen}"))
}

/// `POST /api/customgpt-jwt` with the given headers: status, headers, body.
async fn mint(base: &str, headers: &[(&str, &str)]) -> (u16, reqwest::header::HeaderMap, String) {
    let mut request = reqwest::Client::new()
        .post(format!("{base}/api/customgpt-jwt"))
        .timeout(Duration::from_secs(10));
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    let response = request.send().await.unwrap();
    let status = response.status().as_u16();
    let headers = response.headers().clone();
    (status, headers, response.text().await.unwrap())
}

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

/// Verifies `token` with `key` (RS256 only, `aud` and `iss` as given) and
/// returns its claims.
fn verified_claims(token: &str, key: &DecodingKey, issuer: &str, audience: &str) -> Value {
    let mut validation = Validation::new(Algorithm::RS256);
    validation.set_audience(&[audience]);
    validation.set_issuer(&[issuer]);
    validation.set_required_spec_claims(&["exp", "iat", "sub", "iss", "aud"]);
    validation.leeway = 0;
    jsonwebtoken::decode::<Value>(token, key, &validation)
        .unwrap_or_else(|e| panic!("the minted token does not verify: {e}"))
        .claims
}

#[tokio::test(flavor = "multi_thread")]
async fn a_member_gets_a_short_lived_rs256_token_with_email_and_team_roles() {
    let issuer = MockIssuer::start().await;
    let (key, public) = key_file("member");
    let (mut server, base) = start(&issuer, &key.0);
    let member = issuer
        .token()
        .sub("member-7")
        .email("max@example.com")
        .role("member")
        .team("team-mkt", "Marketing")
        .team("team-eng", "Engineering")
        .sign();

    let before = now();
    let (status, headers, body) = mint(&base, &[("x-meingpt-jwt", &member)]).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(headers["cache-control"], "no-store");
    let answer: Value = serde_json::from_str(&body).unwrap();
    let token = answer["token"].as_str().unwrap();

    let header = jsonwebtoken::decode_header(token).unwrap();
    assert_eq!(header.alg, Algorithm::RS256);
    let claims = verified_claims(token, &public, &base, "customgpt-test");
    assert_eq!(claims["sub"], "member-7");
    assert_eq!(claims["email"], "max@example.com");
    assert_eq!(claims["roles"], json!(["Marketing", "Engineering"]));
    assert_eq!(claims["iss"], base.as_str());
    assert_eq!(claims["aud"], "customgpt-test");
    assert!(claims["jti"].as_str().is_some_and(|jti| !jti.is_empty()));
    let mut names: Vec<&str> = claims
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    names.sort_unstable();
    assert_eq!(
        names,
        ["aud", "email", "exp", "iat", "iss", "jti", "roles", "sub"],
        "no other claims (no meinGPT role, no name)"
    );

    // Short-lived: at most ten minutes, counted from now.
    let iat = claims["iat"].as_u64().unwrap();
    let exp = claims["exp"].as_u64().unwrap();
    assert!(iat >= before && iat <= now(), "iat {iat} is not now");
    assert!(exp > iat && exp - iat <= 600, "lifetime {} s", exp - iat);
    assert!(exp - before <= 600);
    assert_eq!(answer["expires_at"], exp);
    assert_eq!(answer["expires_in"], exp - iat);

    // The JWKS it publishes holds the key that signed the token.
    let jwks: Value = reqwest::get(format!("{base}/.well-known/jwks.json"))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let jwk = &jwks["keys"][0];
    assert_eq!(jwk["kid"], header.kid.unwrap().as_str());
    let from_jwks =
        DecodingKey::from_rsa_components(jwk["n"].as_str().unwrap(), jwk["e"].as_str().unwrap())
            .unwrap();
    verified_claims(token, &from_jwks, &base, "customgpt-test");

    // Another key does not verify it.
    let (_other_file, other) = key_file("other");
    let mut validation = Validation::new(Algorithm::RS256);
    validation.set_audience(&["customgpt-test"]);
    assert!(jsonwebtoken::decode::<Value>(token, &other, &validation).is_err());

    // Never in the logs.
    assert!(!server.stderr().contains(token));
    assert!(server.is_running());
}

#[tokio::test(flavor = "multi_thread")]
async fn without_a_meingpt_token_nothing_is_minted() {
    let issuer = MockIssuer::start().await;
    let (key, _) = key_file("anonymous");
    let (_server, base) = start(&issuer, &key.0);

    let (status, headers, body) = mint(&base, &[]).await;
    assert_eq!(status, 401, "{body}");
    assert_eq!(headers["www-authenticate"], r#"Bearer realm="meingpt""#);
    assert!(!body.contains("token\""), "{body}");

    let stranger = MockIssuer::start().await;
    let forged = stranger.token().sub("mallory").sign();
    let (status, headers, _) = mint(&base, &[("x-meingpt-jwt", &forged)]).await;
    assert_eq!(status, 401);
    assert!(
        headers["www-authenticate"]
            .to_str()
            .unwrap()
            .contains(r#"error="invalid_token""#)
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_user_without_an_email_address_gets_422() {
    let issuer = MockIssuer::start().await;
    let (key, _) = key_file("no-email");
    let (_server, base) = start(&issuer, &key.0);
    let token = issuer.token().sub("member-7").without("email").sign();
    let (status, _, body) = mint(&base, &[("x-meingpt-jwt", &token)]).await;
    assert_eq!(status, 422, "{body}");
    assert_eq!(
        serde_json::from_str::<Value>(&body).unwrap()["error"],
        "no_email"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn without_configuration_it_makes_a_development_key_and_prints_it() {
    let listen = format!("127.0.0.1:{}", free_port());
    let base = format!("http://{listen}");
    let mut server = Running::spawn(command(&binary(), &[("LISTEN_ADDR", &listen)]));
    let key_path = KeyFile(PathBuf::from(server.value_of("CUSTOMGPT_PRIVATE_KEY_PEM=")));
    let member = server.value_of("MEMBER=");
    let printed = server.read_until(|_| true).join("\n");
    let public_pem = &printed[printed.find("-----BEGIN PUBLIC KEY-----").unwrap()
        ..printed.find("-----END PUBLIC KEY-----").unwrap() + "-----END PUBLIC KEY-----".len()];
    let public = DecodingKey::from_rsa_pem(public_pem.as_bytes()).unwrap();

    let private = std::fs::read_to_string(&key_path.0).unwrap();
    assert!(private.starts_with("-----BEGIN PRIVATE KEY-----"));
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&key_path.0).unwrap().permissions().mode();
        assert_eq!(mode & 0o077, 0, "the development key is readable by others");
    }

    let (status, _, body) = mint(&base, &[("x-meingpt-jwt", &member)]).await;
    assert_eq!(status, 200, "{body}");
    let answer: Value = serde_json::from_str(&body).unwrap();
    let claims = verified_claims(
        answer["token"].as_str().unwrap(),
        &public,
        &base,
        "customgpt",
    );
    assert_eq!(claims["sub"], "member-1");
    assert_eq!(claims["roles"], json!(["Marketing", "Engineering"]));
}

#[test]
fn a_key_file_that_is_not_an_rsa_private_key_is_refused_naming_the_variable() {
    let not_a_key = Path::new(env!("CARGO_TARGET_TMPDIR")).join("customgpt-not-a-key.pem");
    std::fs::write(
        &not_a_key,
        "-----BEGIN PRIVATE KEY-----\nbm90IGEga2V5\n-----END PRIVATE KEY-----\n",
    )
    .unwrap();
    let missing = Path::new(env!("CARGO_TARGET_TMPDIR")).join("customgpt-missing.pem");
    for path in [&not_a_key, &missing] {
        let mut running = Running::spawn(command(
            &binary(),
            &[
                ("LISTEN_ADDR", "127.0.0.1:0"),
                ("CUSTOMGPT_PRIVATE_KEY_PEM", path.to_str().unwrap()),
            ],
        ));
        let status = running.wait_exit();
        assert!(!status.success(), "{}", path.display());
        let stderr = running.stderr();
        assert_eq!(stderr.lines().count(), 1, "{stderr:?}");
        assert!(stderr.contains("CUSTOMGPT_PRIVATE_KEY_PEM"), "{stderr:?}");
    }
    let _ = std::fs::remove_file(&not_a_key);
}

#[test]
fn configured_without_a_signing_key_it_refuses_to_start_naming_the_variable() {
    let oidc = [
        ("AUTH_TYPE", "jwt_oidc"),
        ("JWT_ISS", "https://id.example.com"),
        ("JWT_AUD", "my-api"),
    ];
    let cases: [&[(&str, &str)]; 3] = [
        &[("MEINGPT_ORG_ID", "clx0987654321")],
        &oidc,
        &[
            ("MEINGPT_ORG_ID", "clx0987654321"),
            ("CUSTOMGPT_AUDIENCE", "chat"),
        ],
    ];
    for vars in cases {
        let mut all = vec![("LISTEN_ADDR", "127.0.0.1:0")];
        all.extend_from_slice(vars);
        let line = assert_refused(command(&binary(), &all));
        assert!(
            line.starts_with("error: CUSTOMGPT_PRIVATE_KEY_PEM is not set: "),
            "{vars:?}: {line}"
        );
        assert!(line.contains("every restart"), "{vars:?}: {line}");
    }
}

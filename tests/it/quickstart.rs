//! The quickstart example as a user runs it: the compiled binary, its
//! printed tokens, its routes, and its refusal of bad configuration.
//!
//! Cargo builds examples for a plain `cargo test`; when only this test is
//! selected (`cargo test --test it quickstart`) build the example first:
//! `cargo build --all-features --example quickstart`.

use std::time::{Duration, Instant, SystemTime};

use crate::common::example::{PATIENCE, Running, command, example_binary, free_port, value_of};
use aws_lc_rs::rand::{SecureRandom, SystemRandom};
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use meingpt_auth::testing::{Fault, MockIssuer};
use serde_json::json;

/// The quickstart command with a clean environment, then `vars` on top.
fn quickstart(vars: &[(&str, &str)]) -> std::process::Command {
    command(
        &example_binary("quickstart", &["examples/quickstart.rs"]),
        vars,
    )
}

/// The quickstart configured with `vars`, listening on a free loopback
/// port, once it says it verifies the configured issuer's tokens (and has
/// printed no development tokens); returns it and its base URL.
pub(crate) fn start_configured(vars: &[(&str, &str)]) -> (Running, String) {
    let listen = format!("127.0.0.1:{}", free_port());
    let mut all = vec![("LISTEN_ADDR", listen.as_str())];
    all.extend_from_slice(vars);
    let mut running = Running::spawn(quickstart(&all));
    let printed = running.read_until(|seen| {
        seen.iter()
            .any(|line| line.contains("Verifying tokens from the configured issuer"))
    });
    let base = format!("http://{listen}");
    assert_eq!(
        printed[0],
        format!("meingpt-auth quickstart listening on {base}")
    );
    assert!(
        value_of(printed, "ADMIN=").is_none(),
        "printed development tokens although configured: {printed:#?}"
    );
    (running, base)
}

pub(crate) async fn get(url: &str, headers: &[(&str, &str)]) -> (u16, String) {
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap();
    let mut request = client.get(url);
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    let response = request
        .send()
        .await
        .unwrap_or_else(|e| panic!("GET {url}: {e}"));
    let status = response.status().as_u16();
    (status, response.text().await.unwrap())
}

#[tokio::test(flavor = "multi_thread")]
async fn without_configuration_it_serves_with_a_development_issuer_and_prints_tokens() {
    let port = free_port();
    let listen = format!("127.0.0.1:{port}");
    let mut running = Running::spawn(quickstart(&[("LISTEN_ADDR", &listen)]));
    let printed = running.read_until(|seen| {
        value_of(seen, "ADMIN=").is_some() && value_of(seen, "MEMBER=").is_some()
    });

    let base = format!("http://{listen}");
    assert_eq!(
        printed[0],
        format!("meingpt-auth quickstart listening on {base}"),
        "{printed:#?}"
    );
    let admin = value_of(printed, "ADMIN=").unwrap();
    let member = value_of(printed, "MEMBER=").unwrap();
    assert_eq!(admin.split('.').count(), 3, "ADMIN is not a JWT: {admin}");
    assert_eq!(
        member.split('.').count(),
        3,
        "MEMBER is not a JWT: {member}"
    );

    let (status, body) = get(&format!("{base}/health"), &[]).await;
    assert_eq!((status, body.as_str()), (200, "ok\n"));

    let (status, _) = get(&format!("{base}/me"), &[]).await;
    assert_eq!(status, 401);
    let (status, _) = get(&format!("{base}/ping"), &[]).await;
    assert_eq!(status, 401);
    let (status, body) = get(&format!("{base}/ping"), &[("x-meingpt-jwt", &member)]).await;
    assert_eq!((status, body.as_str()), (200, "pong\n"));

    let (status, body) = get(&format!("{base}/me"), &[("x-meingpt-jwt", &admin)]).await;
    assert_eq!(status, 200, "{body}");
    let user: serde_json::Value = serde_json::from_str(&body).expect("/me answers JSON");
    assert_eq!(user["sub"], "admin-1");
    assert_eq!(user["role"], "admin");

    let bearer = format!("Bearer {member}");
    let (status, _) = get(&format!("{base}/admin"), &[("authorization", &bearer)]).await;
    assert_eq!(status, 403);
    let (status, _) = get(&format!("{base}/me"), &[("authorization", &bearer)]).await;
    assert_eq!(status, 200);

    let (status, body) = get(&format!("{base}/engineering"), &[("x-meingpt-jwt", &admin)]).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body, "Welcome to Engineering, admin-1.\n");
    let (status, _) = get(
        &format!("{base}/engineering"),
        &[("x-meingpt-jwt", &member)],
    )
    .await;
    assert_eq!(status, 403);

    assert!(
        running.child.try_wait().unwrap().is_none(),
        "the server exited while serving"
    );
}

#[test]
fn every_invalid_configuration_exits_with_one_line_naming_the_variable() {
    let cases: &[(&[(&str, &str)], &str)] = &[
        (&[("MEINGPT_ORG_ID", "")], "MEINGPT_ORG_ID"),
        (&[("MEINGPT_ORG_ID", "a b")], "MEINGPT_ORG_ID"),
        (
            &[
                ("MEINGPT_ORG_ID", "org"),
                ("MEINGPT_ISSUER", "http://meingpt.example.com"),
            ],
            "MEINGPT_ISSUER",
        ),
        (
            &[("MEINGPT_ORG_ID", "org"), ("MEINGPT_ISSUER", "not-a-url")],
            "MEINGPT_ISSUER",
        ),
        (
            &[("MEINGPT_ORG_ID", "org"), ("MEINGPT_JWKS_URL", "ftp://x")],
            "MEINGPT_JWKS_URL",
        ),
        (&[("LISTEN_ADDR", "nonsense")], "LISTEN_ADDR"),
    ];
    assert_each_refused(cases);
}

#[test]
fn every_invalid_oidc_or_local_key_configuration_exits_with_one_line_naming_the_variable() {
    let local = |extra: &[(&'static str, &'static str)]| -> Vec<(&'static str, &'static str)> {
        let mut vars = vec![
            ("AUTH_TYPE", "jwt_local"),
            ("JWT_ISS", "https://opengpts.example"),
            ("JWT_AUD", "my-api"),
        ];
        vars.extend_from_slice(extra);
        vars
    };
    let missing_key = local(&[("JWT_ALG", "RS256")]);
    let not_base64 = local(&[("JWT_ALG", "RS256"), ("JWT_DECODE_KEY_B64", "%%%")]);
    // base64 of "not a key"
    let not_a_key = local(&[("JWT_ALG", "RS256"), ("JWT_DECODE_KEY_B64", "bm90IGEga2V5")]);
    let alg_none = local(&[
        ("JWT_ALG", "none"),
        (
            "JWT_DECODE_KEY_B64",
            "c2VjcmV0LXNlY3JldC1zZWNyZXQtc2VjcmV0LXNlY3JldA==",
        ),
    ]);
    let cases: &[(&[(&str, &str)], &str)] = &[
        (&[("AUTH_TYPE", "jwt_magic")], "AUTH_TYPE"),
        (&missing_key, "JWT_DECODE_KEY_B64"),
        (&not_base64, "JWT_DECODE_KEY_B64"),
        (&not_a_key, "JWT_DECODE_KEY_B64"),
        (&alg_none, "JWT_ALG"),
        (
            &[
                ("AUTH_TYPE", "jwt_oidc"),
                ("JWT_ISS", "http://id.example.com"),
                ("JWT_AUD", "api"),
            ],
            "JWT_ISS",
        ),
    ];
    assert_each_refused(cases);
}

/// Runs the quickstart with each configuration and asserts it exits
/// non-zero at once with one stderr line naming the variable, without
/// panicking, listening, or echoing a key.
fn assert_each_refused(cases: &[(&[(&str, &str)], &str)]) {
    for (vars, variable) in cases {
        let mut command = quickstart(vars);
        if !vars.iter().any(|(name, _)| *name == "LISTEN_ADDR") {
            // Should the configuration be accepted after all, do not fight
            // over port 3000.
            command.env("LISTEN_ADDR", "127.0.0.1:0");
        }
        let mut running = Running::spawn(command);
        let started = Instant::now();
        let status = running.wait_exit();
        let stdout = running.read_to_end().join("\n");
        let stderr = running.stderr();

        assert!(!status.success(), "{vars:?}: exited with {status}");
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "{vars:?}: took {:?} to refuse",
            started.elapsed()
        );
        assert!(!stderr.contains("panicked"), "{vars:?}: {stderr}");
        let lines: Vec<&str> = stderr.lines().collect();
        assert_eq!(
            lines.len(),
            1,
            "{vars:?}: stderr is not one line: {stderr:?}"
        );
        assert!(
            lines[0].contains(variable),
            "{vars:?}: stderr does not name {variable}: {stderr:?}"
        );
        assert!(
            !stdout.contains("listening"),
            "{vars:?}: listened anyway: {stdout:?}"
        );
        if let Some((_, key)) = vars.iter().find(|(name, _)| *name == "JWT_DECODE_KEY_B64") {
            assert!(
                !stderr.contains(key) && !stdout.contains(key),
                "{vars:?}: the key was echoed: {stderr:?}"
            );
        }
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn configured_for_an_issuer_it_verifies_that_issuers_tokens() {
    let issuer = MockIssuer::start().await;
    let (_running, base) = start_configured(&[
        ("MEINGPT_ORG_ID", issuer.organization()),
        ("MEINGPT_ISSUER", issuer.issuer()),
    ]);

    let token = issuer
        .token()
        .sub("user-7")
        .role("admin")
        .team("t1", "Engineering")
        .sign();
    let (status, body) = get(&format!("{base}/me"), &[("x-meingpt-jwt", &token)]).await;
    assert_eq!(status, 200, "{body}");
    let user: serde_json::Value = serde_json::from_str(&body).expect("/me answers JSON");
    assert_eq!(user["sub"], "user-7");
    assert_eq!(user["organization_id"], issuer.organization());
    assert_eq!(user["iss"], issuer.issuer());
    let (status, _) = get(&format!("{base}/admin"), &[("x-meingpt-jwt", &token)]).await;
    assert_eq!(status, 200);
    assert_eq!(issuer.fetch_count(), 1);

    // A token from another issuer for the same organization is refused.
    let stranger = MockIssuer::start().await;
    let foreign = stranger.token().sub("user-7").role("admin").sign();
    let (status, _) = get(&format!("{base}/me"), &[("x-meingpt-jwt", &foreign)]).await;
    assert_eq!(status, 401);
    assert_eq!(stranger.fetch_count(), 0);
}

#[tokio::test(flavor = "multi_thread")]
async fn configured_with_a_local_hs256_secret_it_verifies_tokens_signed_with_it() {
    let mut secret = [0u8; 32];
    SystemRandom::new().fill(&mut secret).unwrap();
    let encoded = STANDARD.encode(secret);
    let (mut running, base) = start_configured(&[
        ("AUTH_TYPE", "jwt_local"),
        ("JWT_ALG", "HS256"),
        ("JWT_ISS", "https://opengpts.example"),
        ("JWT_AUD", "my-api"),
        ("JWT_DECODE_KEY_B64", &encoded),
    ]);

    let now = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let claims = json!({
        "iss": "https://opengpts.example",
        "aud": "my-api",
        "sub": "local-7",
        "iat": now,
        "exp": now + 600,
    });
    let sign = |key: &[u8]| {
        jsonwebtoken::encode(
            &Header::new(Algorithm::HS256),
            &claims,
            &EncodingKey::from_secret(key),
        )
        .unwrap()
    };
    let token = sign(&secret);
    let bearer = format!("Bearer {token}");

    let (status, body) = get(&format!("{base}/me"), &[("authorization", &bearer)]).await;
    assert_eq!(status, 200, "{body}");
    let user: serde_json::Value = serde_json::from_str(&body).expect("/me answers JSON");
    assert_eq!(user["sub"], "local-7");
    assert_eq!(user["organization_id"], "my-api");
    assert_eq!(user["iss"], "https://opengpts.example");
    assert_eq!(user["roles"], json!([]));
    assert_eq!(user["teams"], json!([]));

    let (status, _) = get(&format!("{base}/admin"), &[("authorization", &bearer)]).await;
    assert_eq!(status, 403);

    let forged = sign(&[9u8; 32]);
    let (status, body) = get(&format!("{base}/me"), &[("x-meingpt-jwt", &forged)]).await;
    assert_eq!(status, 401);
    assert!(body.contains("the token's signature is invalid"), "{body}");

    assert!(
        running.child.try_wait().unwrap().is_none(),
        "the server exited while serving"
    );
}

/// The quickstart configured with `vars`, once its stderr holds `needle`
/// (a line printed before it listens) and a whole line; returns its whole
/// stderr then.
fn stderr_at_start(vars: &[(&str, &str)], needle: &str) -> String {
    let (mut running, _base) = start_configured(vars);
    let deadline = Instant::now() + PATIENCE;
    loop {
        let stderr = running.stderr();
        if stderr.contains(needle) && stderr.ends_with('\n') {
            assert!(running.is_running(), "the quickstart exited: {stderr}");
            return stderr;
        }
        assert!(
            Instant::now() < deadline,
            "stderr never held {needle:?}: {stderr:?}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_wrong_organization_id_is_reported_once_naming_the_url_and_what_may_be_wrong() {
    let issuer = MockIssuer::start().await;
    let url = format!("{}/api/custom-apps/v1/jwks/clx-wrong-org", issuer.issuer());
    let stderr = stderr_at_start(
        &[
            ("MEINGPT_ORG_ID", "clx-wrong-org"),
            ("MEINGPT_ISSUER", issuer.issuer()),
        ],
        "warning: ",
    );

    assert_eq!(
        stderr,
        format!(
            "warning: cannot load signing keys from {url} (set by MEINGPT_ORG_ID / \
             `organization`): the issuer answered HTTP 404: no key set here; the organization \
             id or the issuer (MEINGPT_ISSUER / `issuer`) may be wrong\n"
        )
    );
    assert_eq!(issuer.fetch_count(), 0);
}

#[tokio::test(flavor = "multi_thread")]
async fn every_failed_fetch_at_start_up_is_printed_once() {
    let meingpt = MockIssuer::start().await;
    meingpt.fail(Fault::Status(500));
    // An OpenID Connect issuer nobody answers for: the connection is refused.
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let oidc = format!("http://{}", closed.local_addr().unwrap());
    drop(closed);
    let discovery = format!("{oidc}/.well-known/openid-configuration");

    let stderr = stderr_at_start(
        &[
            ("MEINGPT_ORG_ID", meingpt.organization()),
            ("MEINGPT_ISSUER", meingpt.issuer()),
            ("AUTH_TYPE", "jwt_oidc"),
            ("JWT_ISS", &oidc),
            ("JWT_AUD", "my-api"),
        ],
        "warning: ",
    );

    // The first failure is the quickstart's one warning line; the other
    // issuer's is the crate's one log line. Neither is printed twice.
    assert_eq!(stderr.matches(&meingpt.jwks_url()).count(), 1, "{stderr}");
    assert_eq!(stderr.matches(&discovery).count(), 1, "{stderr}");
    assert_eq!(stderr.lines().count(), 2, "{stderr}");
    let warning = stderr
        .lines()
        .find(|line| line.starts_with("warning: "))
        .unwrap();
    assert!(
        warning.contains(&meingpt.jwks_url()) && warning.contains("HTTP 500"),
        "{stderr}"
    );
    assert!(
        stderr.contains("JWKS fetch failed") && stderr.contains("WARN"),
        "{stderr}"
    );
}

//! Interoperability with an independent JWT implementation: keys generated
//! and tokens signed by Node's `jose` (interop/mint.mjs) are verified by the
//! layer, served from a `MockIssuer` that publishes jose's JWKS.
//!
//! Needs Node.js and `npm ci --prefix interop` (run from the crate root).

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use crate::common::{app, get_with, get_with_token, serve};
use meingpt_auth::testing::{Fault, MockIssuer};
use serde_json::Value;

/// Keys and tokens minted by jose.
struct Minted {
    jwks: Value,
    member: String,
    admin: String,
    expired: String,
    wrong_audience: String,
}

fn interop_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("interop")
}

/// Runs `node interop/mint.mjs <issuer> <organization>` and parses its line.
async fn mint_with_jose(issuer: &str, organization: &str) -> Minted {
    let dir = interop_dir();
    assert!(
        dir.join("node_modules").join("jose").is_dir(),
        "{} is missing: the interop test needs Node's jose. \
         Run `npm ci --prefix interop` in {} first.",
        dir.join("node_modules").join("jose").display(),
        env!("CARGO_MANIFEST_DIR"),
    );
    let child = tokio::process::Command::new("node")
        .arg(dir.join("mint.mjs"))
        .arg(issuer)
        .arg(organization)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap_or_else(|e| panic!("cannot run `node` (is Node.js installed and on PATH?): {e}"));
    let output = tokio::time::timeout(Duration::from_secs(60), child.wait_with_output())
        .await
        .expect("interop/mint.mjs did not finish within 60 s")
        .expect("waiting for interop/mint.mjs");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "interop/mint.mjs failed ({}):\n{stderr}",
        output.status
    );
    let lines: Vec<&str> = stdout.lines().filter(|l| !l.trim().is_empty()).collect();
    assert_eq!(
        lines.len(),
        1,
        "interop/mint.mjs should print one JSON line, printed:\n{stdout}"
    );
    let printed: Value = serde_json::from_str(lines[0])
        .unwrap_or_else(|e| panic!("interop/mint.mjs printed no JSON ({e}): {stdout}"));
    let token = |name: &str| {
        printed["tokens"][name]
            .as_str()
            .unwrap_or_else(|| panic!("no token {name:?} in {printed}"))
            .to_owned()
    };
    Minted {
        jwks: printed["jwks"].clone(),
        member: token("member"),
        admin: token("admin"),
        expired: token("expired"),
        wrong_audience: token("wrong_audience"),
    }
}

#[tokio::test]
async fn tokens_signed_by_node_jose_are_verified_with_its_jwks() {
    let issuer = MockIssuer::start().await;
    let minted = mint_with_jose(issuer.issuer(), issuer.organization()).await;

    // The key set jose produced: one RSA public key, nothing private.
    let keys = minted.jwks["keys"].as_array().expect("jwks.keys");
    assert_eq!(keys.len(), 1, "{}", minted.jwks);
    let key = &keys[0];
    assert_eq!(key["kty"], "RSA");
    assert_eq!(key["alg"], "RS256");
    assert_eq!(key["use"], "sig");
    assert!(key["kid"].is_string());
    assert!(
        key.get("d").is_none(),
        "the published JWK holds a private member"
    );

    issuer.fail(Fault::Body(minted.jwks.to_string()));
    let auth = issuer.auth().build().unwrap();
    let base = serve(app(&auth)).await;

    // A member: authenticated, with the claims jose wrote.
    let seen = get_with_token(&format!("{base}/me"), &minted.member).await;
    assert_eq!(seen.status, 200, "body: {}", seen.body);
    let user = seen.json();
    assert_eq!(user["sub"], "member-1");
    assert_eq!(user["role"], "member");
    assert_eq!(user["roles"], serde_json::json!(["member"]));
    assert_eq!(
        user["teams"],
        serde_json::json!([{ "id": "team-mkt", "name": "Marketing" }])
    );
    assert_eq!(user["organization_id"], issuer.organization());
    assert_eq!(user["organization_name"], "Example GmbH");
    assert_eq!(user["email"], "member-1@example.com");
    assert_eq!(user["username"], "User member-1");
    assert_eq!(user["iss"], issuer.issuer());
    assert!(user["jti"].is_string(), "{user}");
    assert!(user["iat"].is_i64() && user["exp"].is_i64(), "{user}");

    // The same token as `Authorization: Bearer`.
    let bearer = format!("Bearer {}", minted.member);
    let seen = get_with(&format!("{base}/me"), &[("authorization", &bearer)]).await;
    assert_eq!(seen.status, 200, "body: {}", seen.body);

    // An admin passes the role guard; a member does not.
    let seen = get_with_token(&format!("{base}/me"), &minted.admin).await;
    assert_eq!(seen.status, 200, "body: {}", seen.body);
    assert_eq!(seen.json()["sub"], "admin-1");
    assert_eq!(seen.json()["role"], "admin");
    let seen = get_with_token(&format!("{base}/admin"), &minted.admin).await;
    assert_eq!(seen.status, 200, "body: {}", seen.body);
    assert_eq!(seen.body, "admin area");
    let seen = get_with_token(&format!("{base}/admin"), &minted.member).await;
    assert_eq!(seen.status, 403, "body: {}", seen.body);
    assert_eq!(seen.json()["error"], "insufficient_scope");

    // Teams from jose's claims drive the team guard.
    let seen = get_with_token(&format!("{base}/engineering"), &minted.admin).await;
    assert_eq!(seen.status, 200, "body: {}", seen.body);
    let seen = get_with_token(&format!("{base}/engineering"), &minted.member).await;
    assert_eq!(seen.status, 403, "body: {}", seen.body);

    // Validly signed but refused on their claims.
    get_with_token(&format!("{base}/me"), &minted.expired)
        .await
        .assert_invalid_token("the token has expired");
    get_with_token(&format!("{base}/me"), &minted.wrong_audience)
        .await
        .assert_invalid_token("the token is meant for another audience");

    assert_eq!(issuer.fetch_count(), 1);
}

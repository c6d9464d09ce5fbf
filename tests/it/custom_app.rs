//! The Custom AI App example's binary, without a browser: its
//! configuration, the headers and page it serves, and its API. (The page's
//! script is exercised in a real browser by `tests/it/browser.rs`.)
//!
//! Cargo builds examples for a plain `cargo test`; when only this test is
//! selected (`cargo test --test it custom_app`) build the example first:
//! `cargo build --all-features --example custom_app`.

use std::time::Duration;

use crate::common::example::{Running, command, example_binary, free_port};
use meingpt_auth::testing::MockIssuer;

fn binary() -> std::path::PathBuf {
    example_binary("custom_app", &["examples/custom_app"])
}

async fn get(url: &str, bearer: Option<&str>) -> reqwest::Response {
    let mut request = reqwest::Client::new()
        .get(url)
        .timeout(Duration::from_secs(10));
    if let Some(token) = bearer {
        request = request.bearer_auth(token);
    }
    request.send().await.unwrap()
}

fn policies(response: &reqwest::Response) -> Vec<String> {
    response
        .headers()
        .get_all("content-security-policy")
        .iter()
        .map(|v| v.to_str().unwrap().to_owned())
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn without_configuration_only_meingpt_may_frame_it_and_the_printed_link_signs_in() {
    let listen = format!("127.0.0.1:{}", free_port());
    let base = format!("http://{listen}");
    let mut server = Running::spawn(command(&binary(), &[("LISTEN_ADDR", &listen)]));
    let link = server.value_of("Open ");
    let token = link
        .strip_prefix(&format!("{base}/#token="))
        .unwrap_or_else(|| panic!("not a link to the app with a token: {link:.40}…"))
        .to_owned();

    let page = get(&format!("{base}/"), None).await;
    assert_eq!(page.status(), 200);
    assert!(
        policies(&page).contains(&"frame-ancestors https://app.meingpt.com".to_owned()),
        "{:?}",
        policies(&page)
    );
    assert!(
        policies(&page)
            .iter()
            .any(|p| p.contains("script-src 'self'"))
    );
    assert_eq!(page.headers()["referrer-policy"], "no-referrer");
    let html = page.text().await.unwrap();
    assert!(
        html.contains(r#"<meta name="meingpt-origin" content="https://app.meingpt.com">"#),
        "{html}"
    );
    assert!(html.contains(r#"<script src="/app.js"></script>"#));

    let script = get(&format!("{base}/app.js"), None).await;
    assert_eq!(script.status(), 200);
    assert!(
        script.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/javascript")
    );
    assert!(
        script
            .text()
            .await
            .unwrap()
            .contains("MEINGPT_TOKEN_REFRESH")
    );

    let anonymous = get(&format!("{base}/api/me"), None).await;
    assert_eq!(anonymous.status(), 401);
    assert_eq!(
        anonymous.headers()["www-authenticate"],
        r#"Bearer realm="meingpt""#
    );
    assert_eq!(
        policies(&anonymous),
        ["frame-ancestors https://app.meingpt.com"]
    );

    let me = get(&format!("{base}/api/me"), Some(&token)).await;
    assert_eq!(me.status(), 200);
    let user: serde_json::Value = me.json().await.unwrap();
    assert_eq!(user["sub"], "member-1");
    assert_eq!(user["teams"][0]["name"], "Marketing");

    assert!(!server.stderr().contains(&token), "the token was logged");
}

#[tokio::test(flavor = "multi_thread")]
async fn meingpt_origin_sets_who_may_frame_it_and_whose_messages_the_page_trusts() {
    let issuer = MockIssuer::start().await;
    let listen = format!("127.0.0.1:{}", free_port());
    let base = format!("http://{listen}");
    let mut server = Running::spawn(command(
        &binary(),
        &[
            ("LISTEN_ADDR", &listen),
            ("MEINGPT_ORG_ID", issuer.organization()),
            ("MEINGPT_ISSUER", issuer.issuer()),
            ("MEINGPT_ORIGIN", "https://MeinGPT.example.com:8443/"),
        ],
    ));
    server.read_until(|seen| {
        seen.iter()
            .any(|line| line.contains("Verifying tokens from the configured issuer"))
    });

    let page = get(&format!("{base}/"), None).await;
    assert!(
        policies(&page).contains(&"frame-ancestors https://meingpt.example.com:8443".to_owned())
    );
    let html = page.text().await.unwrap();
    assert!(html.contains(r#"content="https://meingpt.example.com:8443""#));

    let token = issuer.token().sub("user-9").sign();
    let me = get(&format!("{base}/api/me"), Some(&token)).await;
    assert_eq!(me.status(), 200);
}

#[tokio::test(flavor = "multi_thread")]
async fn the_issuer_is_the_default_meingpt_origin() {
    let issuer = MockIssuer::start().await;
    let listen = format!("127.0.0.1:{}", free_port());
    let mut server = Running::spawn(command(
        &binary(),
        &[
            ("LISTEN_ADDR", &listen),
            ("MEINGPT_ORG_ID", issuer.organization()),
            ("MEINGPT_ISSUER", issuer.issuer()),
        ],
    ));
    let allowed = server.value_of("Only ");
    assert!(allowed.starts_with(issuer.issuer()), "{allowed}");
    let page = get(&format!("http://{listen}/"), None).await;
    assert!(policies(&page).contains(&format!("frame-ancestors {}", issuer.issuer())));
}

#[test]
fn an_origin_that_is_not_an_origin_is_refused_naming_meingpt_origin() {
    for origin in [
        "https://*.meingpt.com",
        "https://app.meingpt.com/apps",
        "http://app.meingpt.com",
        "not a url",
    ] {
        let mut running = Running::spawn(command(
            &binary(),
            &[("LISTEN_ADDR", "127.0.0.1:0"), ("MEINGPT_ORIGIN", origin)],
        ));
        let status = running.wait_exit();
        assert!(!status.success(), "{origin}");
        let stderr = running.stderr();
        assert_eq!(stderr.lines().count(), 1, "{origin}: {stderr:?}");
        assert!(stderr.contains("MEINGPT_ORIGIN"), "{origin}: {stderr:?}");
    }
}

//! A browser that keeps no cookie inside meinGPT's frame (Safari before
//! 26.2 blocks third-party cookies and does not know `Partitioned`): the
//! first-load page finds the session cookie was not kept and says what to
//! do, instead of signing in again and again.

use std::sync::Arc;

use meingpt_auth::testing::MockIssuer;

use super::{
    APP_HOST, Browser, Certificate, Cookies, ONE_BROWSER, gateway_config, serve_stand_in,
    stand_in_url,
};
use crate::common::{Gateway, PATIENCE, free_port};

#[tokio::test(flavor = "multi_thread")]
async fn a_browser_that_keeps_no_cookie_in_the_frame_shows_the_page_that_says_so() {
    let _one = ONE_BROWSER.lock().await;
    let certificate = Certificate::new();
    let Some(browser) = Browser::start_with(&certificate, Cookies::None).await else {
        return;
    };
    let issuer = Arc::new(MockIssuer::start().await);
    let (stand_in_port, stand_in) = serve_stand_in(issuer.clone(), &certificate).await;
    // No request may reach the app: nothing listens there.
    let routes = format!(
        "[[route]]\nprefix = \"/\"\nupstream = \"http://127.0.0.1:{}\"\nembed = true\n",
        free_port()
    );
    let gateway = Gateway::from_config(&gateway_config(
        Some(&certificate),
        &issuer,
        &[stand_in_port],
        &routes,
    ));
    let app = format!("https://{APP_HOST}:{}/", gateway.addr.port());
    browser
        .open(&stand_in_url(stand_in_port, &app, "user=member"))
        .await;
    browser.enter("app").await;
    browser.wait_for_sign_in_state("cookies-blocked").await;
    let shown = browser
        .run("return document.body.innerText")
        .await
        .as_str()
        .unwrap_or_default()
        .to_owned();
    assert!(
        shown.contains("Your browser keeps no sign-in for apps inside meinGPT")
            && shown.contains("Safari before 26.2"),
        "{shown}"
    );
    // The token was good: the session endpoint made the session, once;
    // the page then checked for the cookie, found none, and stopped.
    let counts = |log: &str| {
        let made = log
            .lines()
            .filter(|line| {
                line.contains("method=POST path=/_meingpt/session ") && line.contains("status=200")
            })
            .count();
        let checked = log
            .lines()
            .filter(|line| {
                line.contains("method=GET path=/_meingpt/session ") && line.contains("status=401")
            })
            .count();
        (made, checked)
    };
    // Access-log lines are written in batches (every 100 ms): wait for
    // both, then once more for any later line.
    let deadline = std::time::Instant::now() + PATIENCE;
    while counts(&gateway.process.output()) < (1, 1) && std::time::Instant::now() < deadline {
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    let log = gateway.process.output();
    assert_eq!(counts(&log), (1, 1), "{log}");
    assert_eq!(stand_in.tokens_handed_out(), 1);
    browser.quit().await;
}

//! A real Streamlit app from PyPI (`streamlit_app.py`, nothing in it for
//! the gateway) framed by the stand-in: the user's name renders from the
//! identity headers, the button's round trip over Streamlit's WebSocket
//! works, and still works after the token expired (the gateway closed the
//! WebSocket; Streamlit reconnected with the refreshed cookie). The
//! screenshot of this is `gateway/docs/embed_streamlit.png`
//! (`MEINGPT_UPDATE_SCREENSHOT=1` writes it).

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use meingpt_auth::testing::MockIssuer;

use super::{
    APP_HOST, Browser, Certificate, ONE_BROWSER, PROMPTLY, gateway_config, python, serve_stand_in,
    stand_in_url, wait_for,
};
use crate::common::{Gateway, Process, free_port, repo_root};

/// Token lifetime of the stand-in: one expiry within the test.
const LIFETIME: Duration = Duration::from_secs(20);

/// How long Streamlit may take to start and to render.
const STREAMLIT_PATIENCE: Duration = Duration::from_secs(60);

fn start_streamlit(python: &Path) -> (Process, SocketAddr) {
    let port = free_port();
    let port_text = port.to_string();
    let mut command = std::process::Command::new(python);
    command.current_dir(repo_root().join("gateway/tests/rig/python"));
    command.args([
        "-m",
        "streamlit",
        "run",
        "streamlit_app.py",
        "--server.port",
        &port_text,
        "--server.address",
        "127.0.0.1",
        "--server.headless",
        "true",
        "--server.fileWatcherType",
        "none",
        "--browser.gatherUsageStats",
        "false",
    ]);
    command.env("STREAMLIT_BROWSER_GATHER_USAGE_STATS", "false");
    let mut process = Process::spawn("streamlit", command);
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    process.wait_for_port(addr, None);
    (process, addr)
}

/// The text the app shows (inside its frame).
async fn shown(browser: &Browser) -> String {
    browser
        .run("return document.body ? document.body.innerText : ''")
        .await
        .as_str()
        .unwrap_or("")
        .to_owned()
}

/// Clicks the `Count` button, once it is there (Streamlit draws the page
/// again after a reconnect).
async fn click_count(browser: &Browser) {
    wait_for("the Count button", PROMPTLY, async || {
        let clicked = browser
            .run(
                "const b = [...document.querySelectorAll('button')] \
                   .find((b) => b.innerText.trim() === 'Count' && !b.disabled); \
                 if (b) b.click(); return !!b;",
            )
            .await;
        (clicked == true).then_some(())
    })
    .await;
}

/// The `Clicks: n` the app shows.
async fn clicks(browser: &Browser) -> Option<u32> {
    let text = shown(browser).await;
    text.lines()
        .find_map(|line| line.trim().strip_prefix("Clicks: "))
        .and_then(|n| n.trim().parse().ok())
}

#[tokio::test(flavor = "multi_thread")]
async fn an_unmodified_streamlit_app_in_meingpt_shows_the_user_and_its_button_round_trips() {
    let _one = ONE_BROWSER.lock().await;
    let certificate = Certificate::new();
    let Some(browser) = Browser::start(&certificate).await else {
        return;
    };
    let Some(python) = python() else { return };
    let (streamlit, upstream) = start_streamlit(&python);
    let issuer = Arc::new(MockIssuer::start().await);
    let (stand_in_port, _stand_in) = serve_stand_in(issuer.clone(), &certificate).await;
    let routes = format!(
        "[[route]]\nprefix = \"/\"\nupstream = \"http://{upstream}\"\nembed = true\n\
         embed_partition_cookies = true\n"
    );
    let gateway = Gateway::from_config(&gateway_config(
        Some(&certificate),
        &issuer,
        &[stand_in_port],
        &routes,
    ));
    let app = format!("https://{APP_HOST}:{}/", gateway.addr.port());

    let opened = Instant::now();
    let controls = format!("user=member&lifetime={}", LIFETIME.as_secs());
    browser
        .open(&stand_in_url(stand_in_port, &app, &controls))
        .await;
    browser.enter("app").await;
    wait_for(
        "Streamlit to show the user",
        STREAMLIT_PATIENCE,
        async || {
            shown(&browser)
                .await
                .contains("Signed in as Max Member (member-1)")
                .then_some(())
        },
    )
    .await;
    wait_for("the button", PROMPTLY, async || {
        clicks(&browser).await.filter(|n| *n == 0)
    })
    .await;
    click_count(&browser).await;
    wait_for("the click's round trip", PROMPTLY, async || {
        clicks(&browser).await.filter(|n| *n == 1)
    })
    .await;

    let png = browser.screenshot().await;
    let target = Path::new(env!("CARGO_TARGET_TMPDIR")).join("embed_streamlit.png");
    std::fs::write(&target, &png).expect("write the screenshot");
    if std::env::var("MEINGPT_UPDATE_SCREENSHOT").as_deref() == Ok("1") {
        let docs = repo_root().join("gateway/docs/embed_streamlit.png");
        std::fs::create_dir_all(docs.parent().unwrap()).expect("gateway/docs/");
        std::fs::write(&docs, &png).expect("write gateway/docs/embed_streamlit.png");
    }

    // Past the first token's expiry: the gateway closed the WebSocket,
    // Streamlit opened a new one with the refreshed cookie, and the button
    // still works.
    tokio::time::sleep((LIFETIME + Duration::from_secs(3)).saturating_sub(opened.elapsed())).await;
    browser.enter("app").await;
    let streams = wait_for("Streamlit to reconnect", PROMPTLY, async || {
        let opened = gateway
            .process
            .output()
            .lines()
            .filter(|line| line.contains("path=/_stcore/stream ") && line.contains("status=101"))
            .count();
        (opened >= 2).then_some(opened)
    })
    .await;
    assert!(streams >= 2);
    let before = wait_for("the app after the reconnect", PROMPTLY, async || {
        clicks(&browser).await
    })
    .await;
    click_count(&browser).await;
    wait_for("a click after the expiry", PROMPTLY, async || {
        clicks(&browser).await.filter(|n| *n == before + 1)
    })
    .await;
    assert!(
        shown(&browser).await.contains("member-1"),
        "{}",
        shown(&browser).await
    );
    drop(streamlit);
    browser.quit().await;
}

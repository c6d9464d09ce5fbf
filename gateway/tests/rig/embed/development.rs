//! The development gateway (nothing configured but `GATEWAY_UPSTREAM`, on
//! loopback, plain HTTP) prints where its meinGPT stand-in is; opened
//! there, the stand-in shows the app signed in, as meinGPT will.

use std::process::Command;

use super::{Browser, Certificate, ONE_BROWSER, PROMPTLY, python, start_notes, wait_for};
use crate::common::{Process, free_port};

#[tokio::test(flavor = "multi_thread")]
async fn the_development_gateway_prints_its_stand_in_which_shows_the_app_signed_in() {
    let _one = ONE_BROWSER.lock().await;
    let certificate = Certificate::new();
    let Some(browser) = Browser::start(&certificate).await else {
        return;
    };
    let Some(python) = python() else { return };
    let (_notes, notes) = start_notes(&python);
    let port = free_port();
    let mut command = Command::new(env!("CARGO_BIN_EXE_meingpt-gateway"));
    for (name, _) in std::env::vars_os() {
        let name = name.to_string_lossy();
        if name.starts_with("MEINGPT_") || name.starts_with("JWT_") || name == "AUTH_TYPE" {
            command.env_remove(name.as_ref());
        }
    }
    command
        .env("GATEWAY_UPSTREAM", format!("http://{notes}"))
        .env("LISTEN_ADDR", format!("127.0.0.1:{port}"))
        .env_remove("GATEWAY_EMBED");
    let mut gateway = Process::spawn("meingpt-gateway", command);
    let line = gateway.wait_for_line("open the meinGPT stand-in at ");
    let url = line
        .split("open the meinGPT stand-in at ")
        .nth(1)
        .and_then(|rest| rest.split_whitespace().next())
        .expect("the stand-in's address");
    assert_eq!(url, format!("http://localhost:{port}/_meingpt/dev"));

    browser.open(&format!("{url}?user=member")).await;
    browser.enter("app").await;
    wait_for("the app to show the user", PROMPTLY, async || {
        (browser.text("user").await.as_deref() == Some("member-1")).then_some(())
    })
    .await;
    let frame = browser.run("return location.origin").await;
    assert_eq!(
        frame,
        format!("http://127.0.0.1:{port}"),
        "the app is another site"
    );
    browser.quit().await;
}

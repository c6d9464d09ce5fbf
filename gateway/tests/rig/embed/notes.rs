//! A plain server-rendered app (`notes.py`, Python's standard library)
//! behind two gateway replicas behind nginx (HTTPS), framed by the
//! stand-in: its form POST and its `fetch()` work, keep working with
//! 20-second tokens past two expiries without a reload, and the session
//! made on one replica is taken by the other. Around it: the app opened
//! without meinGPT, `MEINGPT_TOKEN_ERROR`, a member on an admin-only route,
//! a user of another organization, and a POST from a page of a third
//! site.

use std::net::SocketAddr;
use std::path::Path;
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::Router;
use axum::extract::Query;
use axum::response::Html;
use axum::routing::get;
use meingpt_auth::testing::MockIssuer;

use super::{
    APP_HOST, Browser, Certificate, ONE_BROWSER, OTHER_HOST, PROMPTLY, gateway_config, notes_log,
    python, serve_https, serve_stand_in, stand_in_url, start_notes, wait_for,
};
use crate::common::{Gateway, Process, TempDir, free_port, require};

/// Token lifetime of the stand-in in the expiry check.
const LIFETIME: Duration = Duration::from_secs(20);

/// nginx terminating TLS for `app.test` and balancing over the replicas.
struct Balancer {
    port: u16,
    _process: Process,
    _dir: TempDir,
}

impl Balancer {
    fn start(binary: &Path, certificate: &Certificate, replicas: [SocketAddr; 2]) -> Self {
        let dir = TempDir::new("nginx-embed");
        let port = free_port();
        let prefix = dir.path().display();
        let conf = format!(
            "daemon off;\nworker_processes 1;\npid {prefix}/nginx.pid;\n\
             error_log {prefix}/error.log notice;\nevents {{ worker_connections 256; }}\n\
             http {{\n\
             \taccess_log off;\n\
             \tclient_body_temp_path {prefix}/client_body;\n\
             \tproxy_temp_path {prefix}/proxy;\n\
             \tfastcgi_temp_path {prefix}/fastcgi;\n\
             \tuwsgi_temp_path {prefix}/uwsgi;\n\
             \tscgi_temp_path {prefix}/scgi;\n\
             \tmap $http_upgrade $connection_upgrade {{ default upgrade; '' close; }}\n\
             \tupstream meingpt_gateway {{ server {a}; server {b}; }}\n\
             \tserver {{\n\
             \t\tlisten 127.0.0.1:{port} ssl;\n\
             \t\tssl_certificate {cert};\n\
             \t\tssl_certificate_key {key};\n\
             \t\tlocation / {{\n\
             \t\t\tproxy_pass http://meingpt_gateway;\n\
             \t\t\tproxy_http_version 1.1;\n\
             \t\t\tproxy_set_header Host $http_host;\n\
             \t\t\tproxy_set_header Upgrade $http_upgrade;\n\
             \t\t\tproxy_set_header Connection $connection_upgrade;\n\
             \t\t\tproxy_buffering off;\n\
             \t\t}}\n\
             \t}}\n\
             }}\n",
            a = replicas[0],
            b = replicas[1],
            cert = certificate.cert.display(),
            key = certificate.key.display(),
        );
        let conf = dir.write("nginx.conf", &conf);
        let mut command = Command::new(binary);
        command
            .arg("-p")
            .arg(dir.path())
            .arg("-e")
            .arg(dir.path().join("error.log"))
            .arg("-c")
            .arg(&conf);
        let mut process = Process::spawn("nginx", command).stopped_by("QUIT");
        process.wait_for_port(
            SocketAddr::from(([127, 0, 0, 1], port)),
            Some(&dir.path().join("error.log")),
        );
        Self {
            port,
            _process: process,
            _dir: dir,
        }
    }
}

/// A page of a third site that posts a note to the app.
async fn attack(Query(query): Query<std::collections::HashMap<String, String>>) -> Html<String> {
    let target = query
        .get("target")
        .filter(|t| t.starts_with(&format!("https://{APP_HOST}:")))
        .cloned()
        .unwrap_or_default();
    Html(format!(
        r#"<!doctype html><meta charset="utf-8"><title>another site</title>
<form method="post" action="{target}"><input type="hidden" name="note" value="planted">
<button id="attack">Post a note</button></form>"#
    ))
}

/// The notes the app got by form POST.
async fn posted_notes(app: SocketAddr) -> Vec<(String, String)> {
    notes_log(app)
        .await
        .iter()
        .filter(|entry| entry["method"] == "POST")
        .map(|entry| {
            (
                entry["user"].as_str().unwrap_or("").to_owned(),
                entry["note"].as_str().unwrap_or("").to_owned(),
            )
        })
        .collect()
}

/// Access-log lines of `gateway` for `path` answered `200`.
fn served(gateway: &Gateway, path: &str) -> usize {
    gateway
        .process
        .output()
        .lines()
        .filter(|line| line.contains(&format!("path={path} ")) && line.contains("status=200"))
        .count()
}

/// How many requests for `path` the replicas answered, whatever the status.
fn asked(replicas: &[Gateway], path: &str) -> usize {
    replicas
        .iter()
        .map(|replica| {
            replica
                .process
                .output()
                .lines()
                .filter(|line| line.contains(&format!("path={path} ")))
                .count()
        })
        .sum()
}

/// How many sessions the replicas made (their access logs).
fn sessions_made(replicas: &[Gateway]) -> usize {
    replicas
        .iter()
        .map(|replica| {
            replica
                .process
                .output()
                .lines()
                .filter(|line| {
                    line.contains("method=POST path=/_meingpt/session ")
                        && line.contains("status=200")
                })
                .count()
        })
        .sum()
}

#[tokio::test(flavor = "multi_thread")]
async fn an_unmodified_server_rendered_app_works_in_meingpt_on_two_replicas_past_two_token_expiries()
 {
    let _one = ONE_BROWSER.lock().await;
    let Some(nginx) = require("nginx", "MEINGPT_SKIP_NGINX", "apt-get install nginx") else {
        return;
    };
    let certificate = Certificate::new();
    let Some(browser) = Browser::start(&certificate).await else {
        return;
    };
    let Some(python) = python() else { return };
    let issuer = Arc::new(MockIssuer::start().await);
    let (stand_in_port, stand_in) = serve_stand_in(issuer.clone(), &certificate).await;
    let other_port = serve_https(Router::new().route("/attack", get(attack)), &certificate).await;
    let (_notes, notes) = start_notes(&python);
    let routes = format!(
        "[[route]]\nprefix = \"/\"\nupstream = \"http://{notes}\"\nembed = true\n\n\
         [[route]]\nprefix = \"/admin\"\nupstream = \"http://{notes}\"\nembed = true\n\
         roles = [\"admin\"]\n"
    );
    // meinGPT of another organization, whose tokens this gateway refuses.
    let other_issuer = Arc::new(MockIssuer::for_organization("org-other").await);
    let (other_stand_in_port, _other_stand_in) = serve_stand_in(other_issuer, &certificate).await;
    let config = gateway_config(
        None,
        &issuer,
        &[stand_in_port, other_stand_in_port],
        &routes,
    );
    let replicas = [Gateway::from_config(&config), Gateway::from_config(&config)];
    let balancer = Balancer::start(&nginx, &certificate, [replicas[0].addr, replicas[1].addr]);
    let app = format!("https://{APP_HOST}:{}", balancer.port);

    // Opened at the top, without meinGPT: the page says where to open it,
    // and does not sign in with a token someone put in the link.
    let stray = issuer.demo_admin().sign();
    browser.open(&format!("{app}/#token={stray}")).await;
    browser.wait_for_sign_in_state("open-from-meingpt").await;
    let hash = browser.run("return location.hash").await;
    assert_eq!(hash, "", "the token is still in the address");

    // meinGPT answers with MEINGPT_TOKEN_ERROR: its page.
    browser
        .open(&stand_in_url(stand_in_port, &format!("{app}/"), "error=1"))
        .await;
    browser.enter("app").await;
    browser.wait_for_sign_in_state("token-error").await;

    // A member on the admin-only route: no access.
    browser
        .open(&stand_in_url(
            stand_in_port,
            &format!("{app}/admin/"),
            "user=member",
        ))
        .await;
    browser.enter("app").await;
    browser.wait_for_sign_in_state("refused").await;

    // A user of another organization: meinGPT's token is refused.
    browser
        .open(&stand_in_url(
            other_stand_in_port,
            &format!("{app}/"),
            "user=admin",
        ))
        .await;
    browser.enter("app").await;
    browser.wait_for_sign_in_state("token-error").await;
    assert_eq!(sessions_made(&replicas), 0, "no session was made");
    assert!(
        posted_notes(notes).await.is_empty() && notes_log(notes).await.is_empty(),
        "the app saw none of this"
    );

    // Inside meinGPT with 20-second tokens.
    let opened = Instant::now();
    let controls = format!("user=member&lifetime={}", LIFETIME.as_secs());
    browser
        .open(&stand_in_url(stand_in_port, &format!("{app}/"), &controls))
        .await;
    browser.enter("app").await;
    wait_for("the app to show the user", PROMPTLY, async || {
        (browser.text("user").await.as_deref() == Some("member-1")).then_some(())
    })
    .await;
    assert_eq!(browser.text("name").await.as_deref(), Some("Max Member"));
    assert_eq!(browser.run("return location.hash").await, "");

    // The form POST.
    browser
        .run("document.getElementById('note').value = 'first note'; return null;")
        .await;
    browser.click("add").await;
    wait_for("the note to show", PROMPTLY, async || {
        (browser.text("notes").await.as_deref() == Some("first note")).then_some(())
    })
    .await;
    assert_eq!(
        posted_notes(notes).await,
        [("member-1".to_owned(), "first note".to_owned())]
    );
    // The app never sees the session cookie; its own unpartitioned
    // third-party cookie was refused (third-party cookies are blocked).
    assert_eq!(browser.text("cookies").await.as_deref(), Some("none"));

    // The fetch(), four times: nginx alternates between the replicas, so
    // the session one of them made is taken by the other.
    for round in 1..=4 {
        browser.click("whoami").await;
        wait_for("the fetch to answer", PROMPTLY, async || {
            (browser.text("fetches").await.as_deref() == Some(&round.to_string())).then_some(())
        })
        .await;
        assert_eq!(
            browser.text("answer").await.as_deref(),
            Some("200 member-1")
        );
    }
    for (index, replica) in replicas.iter().enumerate() {
        assert!(
            served(replica, "/api/whoami") >= 1,
            "replica {index} served no fetch:\n{}",
            replica.process.output()
        );
    }
    assert_eq!(sessions_made(&replicas), 1, "one session was made");
    assert!(
        !browser
            .text("address")
            .await
            .unwrap_or_default()
            .contains("token="),
        "the app's script read the token in the address"
    );

    // Two expiries later, the same document (no reload) still fetches.
    browser
        .run("window.stillTheSamePage = true; return null;")
        .await;
    let two_expiries = 2 * LIFETIME + Duration::from_secs(2);
    tokio::time::sleep(two_expiries.saturating_sub(opened.elapsed())).await;
    browser.click("whoami").await;
    wait_for("the fetch after two expiries", PROMPTLY, async || {
        (browser.text("fetches").await.as_deref() == Some("5")).then_some(())
    })
    .await;
    assert_eq!(
        browser.text("answer").await.as_deref(),
        Some("200 member-1")
    );
    assert_eq!(
        browser.run("return window.stillTheSamePage === true").await,
        true
    );
    assert!(
        stand_in.tokens_handed_out() >= 3,
        "the page asked meinGPT for fresh tokens: {} handed out",
        stand_in.tokens_handed_out()
    );
    // And the form still posts.
    browser
        .run("document.getElementById('note').value = 'second note'; return null;")
        .await;
    browser.click("add").await;
    wait_for("the second note", PROMPTLY, async || {
        (browser.text("notes").await.as_deref() == Some("first notesecond note")).then_some(())
    })
    .await;
    browser.enter_top().await;
    let answered: u32 = browser.text("answered").await.unwrap().parse().unwrap();
    assert!(answered >= 2, "the stand-in answered {answered} refreshes");

    // meinGPT opens the app again while the session is valid: the page
    // comes from the app at once, with `#token=…` in its address. The
    // refresh script takes the token out before the app's own script
    // runs, and makes the session with it.
    // The premise, a session valid for a while yet: the refresh script
    // renews it a quarter of its lifetime before it ends; wait for the next
    // renewal instead of reopening at whatever moment of the lifetime.
    let before_renewal = sessions_made(&replicas);
    wait_for(
        "the next session renewal",
        LIFETIME + PROMPTLY,
        async || {
            let now: u32 = browser.text("answered").await?.parse().ok()?;
            (now > answered).then_some(())
        },
    )
    .await;
    wait_for("the renewed session", PROMPTLY, async || {
        (sessions_made(&replicas) > before_renewal).then_some(())
    })
    .await;
    let made = sessions_made(&replicas);
    let pages = asked(&replicas, "/");
    browser
        .open(&stand_in_url(stand_in_port, &format!("{app}/"), &controls))
        .await;
    browser.enter("app").await;
    wait_for("the app to show the user again", PROMPTLY, async || {
        (browser.text("user").await.as_deref() == Some("member-1")).then_some(())
    })
    .await;
    // The access log line is written once the answer is complete, which
    // may be after the page shows: wait for it, then count.
    wait_for("the page's access log line", PROMPTLY, async || {
        (asked(&replicas, "/") > pages).then_some(())
    })
    .await;
    assert_eq!(
        asked(&replicas, "/"),
        pages + 1,
        "the app's page came at once, without the first-load page; the replicas logged:\n{}",
        replicas
            .iter()
            .flat_map(|replica| replica
                .process
                .output()
                .lines()
                .map(str::to_owned)
                .collect::<Vec<_>>())
            .filter(|line| line.contains("path=/ "))
            .collect::<Vec<_>>()
            .join("\n")
    );
    let address = browser.text("address").await.unwrap_or_default();
    assert!(
        address.starts_with(&format!("{app}/")) && !address.contains("token="),
        "the app's script read the token in the address ({} characters)",
        address.len()
    );
    assert_eq!(browser.run("return location.hash").await, "");
    wait_for(
        "the session made with the token meinGPT handed over",
        PROMPTLY,
        async || (sessions_made(&replicas) == made + 1).then_some(()),
    )
    .await;

    // Another Custom AI App on meinGPT's page (a third site, sharing the
    // cookie's partition) posts to the app: refused before the app.
    let target = format!("{app}/notes");
    let attack = format!(
        "https://{OTHER_HOST}:{other_port}/attack?target={}",
        super::url_encoded(&target)
    );
    browser
        .open(&format!(
            "{}&also={}",
            stand_in_url(stand_in_port, &format!("{app}/"), "user=member"),
            super::url_encoded(&attack)
        ))
        .await;
    browser.enter("also").await;
    browser.click("attack").await;
    let refused = wait_for(
        "the third site's POST to be answered",
        PROMPTLY,
        async || {
            let text = browser
                .run("return document.body ? document.body.innerText : ''")
                .await;
            text.as_str()
                .filter(|text| text.contains("refused"))
                .map(str::to_owned)
        },
    )
    .await;
    assert!(
        refused.contains("cross-origin request refused"),
        "{refused}"
    );
    // The same page at the top: refused too.
    browser.open(&attack).await;
    browser.click("attack").await;
    wait_for("the top-level POST to be answered", PROMPTLY, async || {
        let text = browser
            .run("return document.body ? document.body.innerText : ''")
            .await;
        text.as_str()
            .filter(|text| text.contains("refused"))
            .map(|_| ())
    })
    .await;
    assert!(
        !posted_notes(notes)
            .await
            .iter()
            .any(|(_, note)| note == "planted"),
        "the app took the third site's note"
    );
    // Nothing of a token (`eyJ…`, in a cookie, a body or a fragment) in
    // the replicas' logs.
    for (index, replica) in replicas.iter().enumerate() {
        assert!(
            !replica.process.output().contains("eyJ"),
            "replica {index} logged a token"
        );
    }
    browser.quit().await;
}

//! The Custom AI App example in a real browser (headless Chromium over
//! WebDriver), embedded the way meinGPT embeds it.
//!
//! Three loopback origins play their parts:
//!
//! - `http://127.0.0.1:A` is meinGPT: a page that embeds the app in an
//!   iframe with `#token=…` and answers `MEINGPT_TOKEN_REFRESH` with a fresh
//!   token from the mock issuer;
//! - `http://localhost:B` is the app (`examples/custom_app`), allowing only
//!   origin A to frame it and to answer its refreshes;
//! - `http://127.0.0.1:C` is another site: a frame on meinGPT's page that
//!   posts a token of its own to the app, and a page that tries to embed
//!   the app itself.
//!
//! Tokens live 10 s and the app has no leeway, so expiry is real.
//!
//! Needs `chromium` and `chromedriver` on the `PATH` (Debian: `apt-get
//! install chromium chromium-driver`); fails without them unless
//! `MEINGPT_SKIP_BROWSER=1` is set. With `MEINGPT_UPDATE_SCREENSHOT=1` the
//! screenshot of the working app is also written to `docs/custom_app.png`.

#![cfg(unix)]

#[path = "../../examples/custom_app/app.rs"]
mod custom_app;

use std::net::SocketAddr;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use axum::Router;
use axum::extract::{Request, State};
use axum::middleware::{self, Next};
use axum::response::Html;
use axum::routing::{get, post};
use fantoccini::{Client, ClientBuilder, Locator};
use meingpt_auth::testing::MockIssuer;
use meingpt_auth::{FrameAncestorsLayer, MeinGptAuth};
use serde_json::{Value, json};

/// Lifetime of every token the test's meinGPT hands out.
const TOKEN_LIFETIME: Duration = Duration::from_secs(10);
/// Upper bound for anything the browser should do "at once".
const PROMPTLY: Duration = Duration::from_secs(10);

// --- the three origins -----------------------------------------------------

struct Origins {
    /// The app, as the browser reaches it (`http://localhost:B`).
    app: String,
    /// The app, as a plain client reaches it (`http://127.0.0.1:B`).
    app_direct: String,
    /// meinGPT (`http://127.0.0.1:A`).
    meingpt: String,
    /// Another site (`http://127.0.0.1:C`).
    stranger: String,
}

struct MeinGptState {
    issuer: Arc<MockIssuer>,
    origins: Arc<Origins>,
    /// The token the app is opened with.
    first_token: String,
    /// The token another site frames the app with.
    stranger_token: String,
    /// How many refreshes the meinGPT page answered.
    refreshes_served: AtomicUsize,
}

/// Everything the browser talks to, served on loopback.
struct World {
    issuer: Arc<MockIssuer>,
    origins: Arc<Origins>,
    state: Arc<MeinGptState>,
    /// The `Authorization` header of each `/api/me` request, in order.
    api_credentials: Arc<Mutex<Vec<String>>>,
}

async fn bind() -> (tokio::net::TcpListener, SocketAddr) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind 127.0.0.1:0");
    let addr = listener.local_addr().unwrap();
    (listener, addr)
}

fn serve(listener: tokio::net::TcpListener, router: Router) {
    tokio::spawn(async move {
        let _ = axum::serve(listener, router).await;
    });
}

fn member_token(issuer: &MockIssuer) -> String {
    issuer
        .token()
        .sub("member-7")
        .username("Max Member")
        .email("max@example.com")
        .role("member")
        .team("team-mkt", "Marketing")
        .team("team-eng", "Engineering")
        .expires_in(TOKEN_LIFETIME)
        .sign()
}

impl World {
    async fn start() -> Self {
        let issuer = Arc::new(MockIssuer::start().await);
        let (app_listener, app_addr) = bind().await;
        let (meingpt_listener, meingpt_addr) = bind().await;
        let (stranger_listener, stranger_addr) = bind().await;
        let origins = Arc::new(Origins {
            app: format!("http://localhost:{}", app_addr.port()),
            app_direct: format!("http://{app_addr}"),
            meingpt: format!("http://{meingpt_addr}"),
            stranger: format!("http://{stranger_addr}"),
        });

        // The app, exactly as the example builds it, but without leeway so
        // that a token is refused the second it expires.
        let auth: MeinGptAuth = issuer
            .auth()
            .leeway(Duration::ZERO)
            .build()
            .expect("auth configuration");
        let frame = FrameAncestorsLayer::new(&origins.meingpt).expect("meinGPT origin");
        let api_credentials = Arc::new(Mutex::new(Vec::new()));
        let credentials = api_credentials.clone();
        let app = custom_app::router(&auth, &frame).layer(middleware::from_fn(
            move |request: Request, next: Next| {
                if request.uri().path() == "/api/me" {
                    let authorization = request
                        .headers()
                        .get("authorization")
                        .and_then(|value| value.to_str().ok())
                        .unwrap_or_default()
                        .to_owned();
                    credentials.lock().unwrap().push(authorization);
                }
                next.run(request)
            },
        ));
        serve(app_listener, app);

        let state = Arc::new(MeinGptState {
            issuer: issuer.clone(),
            origins: origins.clone(),
            first_token: member_token(&issuer),
            stranger_token: issuer.token().sub("framed-elsewhere").sign(),
            refreshes_served: AtomicUsize::new(0),
        });
        let meingpt = Router::new()
            .route("/", get(meingpt_page))
            .route("/token", post(fresh_token))
            .with_state(state.clone());
        serve(meingpt_listener, meingpt);

        let stranger = Router::new()
            .route("/", get(|| async { Html(STRANGER_PAGE) }))
            .route("/embed", get(stranger_embedding_page))
            .with_state(state.clone());
        serve(stranger_listener, stranger);

        Self {
            issuer,
            origins,
            state,
            api_credentials,
        }
    }

    /// `exp` of the token the app is opened with.
    fn first_token_expiry(&self) -> u64 {
        use base64::Engine;
        let payload = self.state.first_token.split('.').nth(1).unwrap();
        let claims: Value = serde_json::from_slice(
            &base64::engine::general_purpose::URL_SAFE_NO_PAD
                .decode(payload)
                .unwrap(),
        )
        .unwrap();
        claims["exp"].as_u64().unwrap()
    }
}

/// meinGPT's page: the app in an iframe, another site in a small frame, and
/// the refresh protocol's meinGPT side.
async fn meingpt_page(State(state): State<Arc<MeinGptState>>) -> Html<String> {
    let origins = &state.origins;
    Html(format!(
        r#"<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>meinGPT — test stand-in</title>
<style>
  body {{ margin: 0; font-family: system-ui, sans-serif; background: #0f172a; color: #e2e8f0; }}
  header {{ padding: .7rem 1rem; font-weight: 600; }}
  header span {{ font-weight: 400; color: #94a3b8; }}
  #app {{ display: block; width: calc(100% - 2rem); height: 470px; margin: 0 1rem; border: 0; border-radius: .6rem; background: #fff; }}
  footer {{ padding: .6rem 1rem; font-size: .8rem; color: #94a3b8; }}
  #stranger {{ width: 260px; height: 28px; border: 1px dashed #475569; vertical-align: middle; }}
</style></head>
<body>
<header>meinGPT <span>· Custom AI App (test stand-in at {meingpt})</span></header>
<iframe id="app" title="Custom AI App" src="{app}/#token={token}"></iframe>
<footer>Token refreshes answered: <span id="answered">0</span> · another site:
  <iframe id="stranger" title="another site" src="{stranger}/"></iframe></footer>
<script>
  const APP_ORIGIN = {app_json};
  let answered = 0;
  window.addEventListener('message', async (event) => {{
    if (event.origin !== APP_ORIGIN || !event.data || event.data.type !== 'MEINGPT_TOKEN_REFRESH') return;
    try {{
      const response = await fetch('/token', {{ method: 'POST' }});
      if (!response.ok) throw new Error('token endpoint answered ' + response.status);
      const {{ token, expiresAt }} = await response.json();
      event.source.postMessage({{ type: 'MEINGPT_TOKEN_RESPONSE', token, expiresAt }}, APP_ORIGIN);
      answered += 1;
      document.getElementById('answered').textContent = String(answered);
    }} catch (error) {{
      event.source.postMessage({{ type: 'MEINGPT_TOKEN_ERROR', error: String(error) }}, APP_ORIGIN);
    }}
  }});
</script>
</body></html>"#,
        meingpt = origins.meingpt,
        app = origins.app,
        stranger = origins.stranger,
        token = state.first_token,
        app_json = Value::from(origins.app.as_str()),
    ))
}

/// A fresh member token and its expiry in milliseconds, as meinGPT hands
/// it to its page.
async fn fresh_token(State(state): State<Arc<MeinGptState>>) -> axum::Json<Value> {
    let token = member_token(&state.issuer);
    let expires_at = SystemTime::now() + TOKEN_LIFETIME;
    let millis = expires_at.duration_since(UNIX_EPOCH).unwrap().as_millis() as u64;
    state.refreshes_served.fetch_add(1, Ordering::SeqCst);
    axum::Json(json!({ "token": token, "expiresAt": millis }))
}

const STRANGER_PAGE: &str = r#"<!doctype html><meta charset="utf-8"><title>another site</title>
<body style="margin:0;font:12px system-ui;color:#94a3b8">another site</body>"#;

/// Another site that embeds the app itself (with a valid token).
async fn stranger_embedding_page(State(state): State<Arc<MeinGptState>>) -> Html<String> {
    Html(format!(
        r#"<!doctype html><meta charset="utf-8"><title>another site</title>
<h1>Another site</h1>
<iframe id="app" src="{app}/#token={token}" onload="window.appFrameLoaded = true"></iframe>"#,
        app = state.origins.app,
        token = state.stranger_token,
    ))
}

// --- the browser -----------------------------------------------------------

/// chromedriver (in its own process group, with the Chromium it starts) and
/// a WebDriver session; everything is stopped when dropped.
struct Browser {
    client: Option<Client>,
    driver: Child,
    profile: PathBuf,
}

fn on_path(program: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|dir| dir.join(program))
        .find(|candidate| candidate.is_file())
}

impl Browser {
    /// Starts Chromium, or returns `None` when `MEINGPT_SKIP_BROWSER=1`.
    ///
    /// # Panics
    ///
    /// When `chromium` or `chromedriver` is missing (and the test is not
    /// skipped), or the browser does not start.
    async fn start() -> Option<Self> {
        if std::env::var("MEINGPT_SKIP_BROWSER").as_deref() == Ok("1") {
            eprintln!("MEINGPT_SKIP_BROWSER=1: skipping the browser test");
            return None;
        }
        let (Some(chromium), Some(chromedriver)) = (on_path("chromium"), on_path("chromedriver"))
        else {
            panic!(
                "the browser test needs Chromium and ChromeDriver: run \
                 `apt-get install chromium chromium-driver` \
                 (or set MEINGPT_SKIP_BROWSER=1 to skip this test)"
            );
        };

        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("a free loopback port")
            .port();
        let driver = Command::new(chromedriver)
            .arg(format!("--port={port}"))
            .arg("--allowed-ips=127.0.0.1")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .process_group(0)
            .spawn()
            .expect("start chromedriver");
        let profile = std::env::temp_dir().join(format!(
            "meingpt-auth-browser-{}-{}",
            std::process::id(),
            driver.id()
        ));
        let mut browser = Self {
            client: None,
            driver,
            profile,
        };

        let webdriver = format!("http://127.0.0.1:{port}");
        wait_for("chromedriver to listen", PROMPTLY, async || {
            let status = reqwest::get(format!("{webdriver}/status")).await.ok()?;
            let status: Value = status.json().await.ok()?;
            status["value"]["ready"].as_bool().filter(|ready| *ready)
        })
        .await;

        let mut capabilities = serde_json::Map::new();
        capabilities.insert("browserName".into(), json!("chrome"));
        capabilities.insert(
            "goog:chromeOptions".into(),
            json!({
                "binary": chromium,
                "args": [
                    "--headless",
                    "--no-sandbox",
                    "--disable-gpu",
                    "--disable-quic",
                    "--no-first-run",
                    "--disable-background-networking",
                    "--disable-component-update",
                    "--disable-sync",
                    "--disable-dev-shm-usage",
                    "--window-size=1100,720",
                    format!("--user-data-dir={}", browser.profile.display()),
                ],
            }),
        );
        let client = ClientBuilder::new(hyper_util::client::legacy::connect::HttpConnector::new())
            .capabilities(capabilities)
            .connect(&webdriver)
            .await
            .unwrap_or_else(|e| panic!("cannot start a Chromium session: {e}"));
        browser.client = Some(client);
        Some(browser)
    }

    fn client(&self) -> &Client {
        self.client.as_ref().expect("a session")
    }

    /// Ends the session (Chromium quits) and chromedriver.
    async fn quit(mut self) {
        if let Some(client) = self.client.take() {
            let _ = client.close().await;
        }
    }

    /// Runs `script` in the current frame.
    async fn run(&self, script: &str, args: Vec<Value>) -> Value {
        self.client()
            .execute(script, args)
            .await
            .unwrap_or_else(|e| panic!("script failed: {e}"))
    }

    /// Switches to the `index`th iframe of the top page (the tests' frames
    /// are one level deep; at the top, "parent frame" stays at the top).
    async fn enter_top_frame(&self, index: u16) {
        let client = self.client();
        client
            .enter_parent_frame()
            .await
            .expect("back to the top page");
        client
            .enter_frame(index)
            .await
            .unwrap_or_else(|e| panic!("cannot enter frame {index}: {e}"));
    }

    /// What the app shows (run inside the app's frame).
    async fn app_view(&self) -> AppView {
        let view = self
            .run(
                r#"const text = (id) => {
                     const element = document.getElementById(id);
                     return element ? element.textContent : null;
                   };
                   const app = document.getElementById('meingpt-custom-app');
                   return {
                     present: app !== null,
                     state: app ? app.dataset.state : null,
                     sub: text('user-sub'),
                     name: text('user-name'),
                     role: text('user-role'),
                     teams: text('user-teams'),
                     lastStatus: text('last-api-status'),
                     apiCalls: Number(text('api-calls')),
                     refreshes: Number(text('refreshes')),
                     ignored: Number(text('ignored-messages')),
                     hashIsEmpty: location.hash === '',
                     urlHasToken: location.href.includes('token'),
                   };"#,
                vec![],
            )
            .await;
        serde_json::from_value(view).expect("the app view")
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        // Chromium runs in chromedriver's process group: stop the group.
        let group = format!("-{}", self.driver.id());
        let _ = Command::new("kill")
            .args(["-TERM", "--", &group])
            .stderr(Stdio::null())
            .status();
        let _ = self.driver.kill();
        let _ = self.driver.wait();
        let _ = std::fs::remove_dir_all(&self.profile);
    }
}

#[derive(Debug, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
struct AppView {
    present: bool,
    state: Option<String>,
    sub: Option<String>,
    name: Option<String>,
    role: Option<String>,
    teams: Option<String>,
    last_status: Option<String>,
    api_calls: u64,
    refreshes: u64,
    ignored: u64,
    hash_is_empty: bool,
    url_has_token: bool,
}

/// Polls `probe` every 100 ms until it returns `Some`, at most `within`.
async fn wait_for<T>(what: &str, within: Duration, mut probe: impl AsyncFnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + within;
    loop {
        if let Some(found) = probe().await {
            return found;
        }
        assert!(Instant::now() < deadline, "waited {within:?} for {what}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn unix_now() -> Duration {
    SystemTime::now().duration_since(UNIX_EPOCH).unwrap()
}

/// The test's screenshot, under the target directory, and in `docs/` when
/// `MEINGPT_UPDATE_SCREENSHOT=1`.
fn save_screenshot(png: &[u8]) {
    let target = Path::new(env!("CARGO_TARGET_TMPDIR")).join("custom_app.png");
    std::fs::write(&target, png).expect("write the screenshot");
    if std::env::var("MEINGPT_UPDATE_SCREENSHOT").as_deref() == Ok("1") {
        let docs = Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/custom_app.png");
        std::fs::create_dir_all(docs.parent().unwrap()).expect("docs/");
        std::fs::write(&docs, png).expect("write docs/custom_app.png");
    }
}

/// One browser at a time: the tests' token timings assume a machine that is
/// not also starting a second Chromium.
static ONE_BROWSER: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

// --- the tests -------------------------------------------------------------

#[tokio::test(flavor = "multi_thread")]
async fn inside_meingpt_the_app_signs_in_refreshes_its_token_and_ignores_other_origins() {
    let _one = ONE_BROWSER.lock().await;
    let Some(browser) = Browser::start().await else {
        return;
    };
    let world = World::start().await;
    let first_expiry = world.first_token_expiry();

    browser
        .client()
        .goto(&format!("{}/", world.origins.meingpt))
        .await
        .expect("open meinGPT's page");
    browser.enter_top_frame(0).await;

    // Signed in with the token from the fragment, which is gone from the URL.
    let view = wait_for("the app to show the signed-in user", PROMPTLY, async || {
        let view = browser.app_view().await;
        (view.state.as_deref() == Some("signed-in")).then_some(view)
    })
    .await;
    assert_eq!(view.sub.as_deref(), Some("member-7"), "{view:?}");
    assert_eq!(view.name.as_deref(), Some("Max Member"), "{view:?}");
    assert_eq!(view.role.as_deref(), Some("member"), "{view:?}");
    assert_eq!(
        view.teams.as_deref(),
        Some("MarketingEngineering"),
        "{view:?}"
    );
    assert_eq!(view.last_status.as_deref(), Some("200"), "{view:?}");
    assert!(
        view.hash_is_empty,
        "the token is still in the frame's location.hash"
    );
    assert!(!view.url_has_token, "the token is still in the frame's URL");

    // Another site's frame on meinGPT's page posts a valid token of another
    // user (an attacker's own account) as if it were meinGPT.
    let mallory = world
        .issuer
        .token()
        .sub("mallory")
        .username("Mallory")
        .role("admin")
        .sign();
    browser.enter_top_frame(1).await;
    browser
        .run(
            "parent.frames[0].postMessage({ type: 'MEINGPT_TOKEN_RESPONSE', token: arguments[0], \
             expiresAt: Date.now() + 3600 * 1000 }, '*'); return null;",
            vec![Value::from(mallory)],
        )
        .await;
    browser.enter_top_frame(0).await;
    let view = wait_for(
        "the app to react to the stranger's message",
        PROMPTLY,
        async || {
            let view = browser.app_view().await;
            (view.ignored > 0 || view.sub.as_deref() != Some("member-7")).then_some(view)
        },
    )
    .await;
    assert_eq!(view.sub.as_deref(), Some("member-7"), "{view:?}");
    assert_eq!(view.ignored, 1, "{view:?}");
    let calls = view.api_calls;
    browser
        .client()
        .find(Locator::Id("reload"))
        .await
        .expect("the reload button")
        .click()
        .await
        .expect("click reload");
    let view = wait_for("the reload to finish", PROMPTLY, async || {
        let view = browser.app_view().await;
        (view.api_calls > calls && view.last_status.as_deref() != Some("…")).then_some(view)
    })
    .await;
    assert_eq!(view.last_status.as_deref(), Some("200"), "{view:?}");
    assert_eq!(view.sub.as_deref(), Some("member-7"), "{view:?}");

    // Before the first token expires, the app has asked meinGPT for a new
    // one over postMessage and got it.
    let until_expiry =
        Duration::from_secs(first_expiry).saturating_sub(unix_now()) + Duration::from_millis(500);
    let view = wait_for(
        "a token refresh before the first token expires",
        until_expiry,
        async || {
            let view = browser.app_view().await;
            (view.refreshes >= 1).then_some(view)
        },
    )
    .await;
    assert!(world.state.refreshes_served.load(Ordering::SeqCst) >= 1);
    assert_eq!(view.sub.as_deref(), Some("member-7"), "{view:?}");

    // The first token really expires: the API refuses it…
    let expired_at = Duration::from_secs(first_expiry + 1);
    tokio::time::sleep(expired_at.saturating_sub(unix_now())).await;
    let response = reqwest::Client::new()
        .get(format!("{}/api/me", world.origins.app_direct))
        .bearer_auth(&world.state.first_token)
        .timeout(PROMPTLY)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 401);
    assert!(
        response.headers()["www-authenticate"]
            .to_str()
            .unwrap()
            .contains(r#"error="invalid_token""#)
    );

    // …while the app, on its refreshed token, still gets answers.
    let calls = browser.app_view().await.api_calls;
    browser
        .client()
        .find(Locator::Id("reload"))
        .await
        .expect("the reload button")
        .click()
        .await
        .expect("click reload");
    let view = wait_for(
        "a reload after the first token expired",
        PROMPTLY,
        async || {
            let view = browser.app_view().await;
            (view.api_calls > calls && view.last_status.as_deref() != Some("…")).then_some(view)
        },
    )
    .await;
    assert_eq!(view.last_status.as_deref(), Some("200"), "{view:?}");
    assert_eq!(view.state.as_deref(), Some("signed-in"), "{view:?}");
    assert_eq!(view.sub.as_deref(), Some("member-7"), "{view:?}");
    assert!(view.refreshes >= 1, "{view:?}");
    assert_eq!(view.ignored, 1, "{view:?}");

    browser
        .client()
        .enter_parent_frame()
        .await
        .expect("back to the top page");
    let png = browser.client().screenshot().await.expect("a screenshot");
    save_screenshot(&png);

    browser.quit().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn another_site_cannot_embed_the_app() {
    let _one = ONE_BROWSER.lock().await;
    let Some(browser) = Browser::start().await else {
        return;
    };
    let world = World::start().await;

    // Another site frames the app with a valid token: the browser refuses
    // to render it (frame-ancestors), so the app never runs.
    browser
        .client()
        .goto(&format!("{}/embed", world.origins.stranger))
        .await
        .expect("open the other site's page");
    wait_for("the other site's iframe to load", PROMPTLY, async || {
        let loaded = browser
            .run("return window.appFrameLoaded === true", vec![])
            .await;
        loaded.as_bool().filter(|loaded| *loaded)
    })
    .await;
    browser.enter_top_frame(0).await;
    let inside = browser
        .run(
            "return { marker: document.getElementById('meingpt-custom-app') !== null, \
             href: location.href }",
            vec![],
        )
        .await;
    assert_eq!(
        inside["marker"], false,
        "the app rendered inside another site"
    );
    assert!(
        !inside["href"]
            .as_str()
            .expect("the frame's address")
            .starts_with(&world.origins.app),
        "the frame holds the app's document: {inside}"
    );

    // The same check sees the app on meinGPT's page. A rendered app calls
    // its API while its frame loads, so a call from the other site's frame
    // would have reached the app before this one.
    browser
        .client()
        .goto(&format!("{}/", world.origins.meingpt))
        .await
        .expect("open meinGPT's page");
    browser.enter_top_frame(0).await;
    wait_for("the app inside meinGPT", PROMPTLY, async || {
        let view = browser.app_view().await;
        (view.present && view.state.as_deref() == Some("signed-in")).then_some(())
    })
    .await;
    let credentials = world.api_credentials.lock().unwrap().clone();
    assert!(!credentials.is_empty());
    assert!(
        !credentials
            .iter()
            .any(|sent| sent.contains(&world.state.stranger_token)),
        "the app ran inside another site"
    );
    assert_eq!(
        credentials[0],
        format!("Bearer {}", world.state.first_token),
        "the first API call came from somewhere else than meinGPT's page"
    );

    browser.quit().await;
}

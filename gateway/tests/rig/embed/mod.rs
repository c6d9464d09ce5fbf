//! Embed mode in a real browser: headless Chromium over WebDriver, the
//! gateway's meinGPT stand-in framing unmodified apps behind the gateway.
//!
//! meinGPT and the app must be two different *sites*, or the browser would
//! treat the app's cookie as a first-party one and the test would prove
//! nothing about production. So every site has a name of its own under
//! `.test` (`meingpt.test`, `app.test`, `other.test`: three registrable
//! domains), which Chromium resolves to 127.0.0.1
//! (`--host-resolver-rules`), and everything is served over HTTPS with a
//! certificate of a test CA made here (rcgen), which Chromium trusts by
//! its key (`--ignore-certificate-errors-spki-list`): `Secure`,
//! `__Host-` and `Partitioned` cookies need a secure origin, and plain
//! `http://127.0.0.1` vs `http://localhost` would give two sites but no
//! HTTPS. Chromium also blocks third-party cookies here (its
//! `cookie_controls_mode` preference), as browsers increasingly do: the
//! session works because it is a partitioned cookie, and the apps'
//! unpartitioned third-party cookie is checked to be refused, so that the
//! blocking is known to be on.
//!
//! Needs `chromium` and `chromedriver` (`MEINGPT_SKIP_BROWSER=1` skips),
//! Python with Streamlit in `gateway/tests/rig/python/.venv`
//! (`bash scripts/test.sh` makes it), and nginx for the replicas.

mod cookies;
mod development;
mod notes;
mod streamlit;

use std::net::SocketAddr;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::Router;
use fantoccini::{Client, ClientBuilder};
use meingpt_auth::testing::MockIssuer;
use meingpt_gateway::embed::StandIn;
use serde_json::{Value, json};
use tokio::net::TcpListener;
use tokio_rustls::TlsAcceptor;

use crate::common::{PATIENCE, Process, TempDir, find_program, free_port, repo_root};

/// The sites' names, all resolved to 127.0.0.1 by Chromium.
pub const MEINGPT_HOST: &str = "meingpt.test";
pub const APP_HOST: &str = "app.test";
pub const OTHER_HOST: &str = "other.test";

/// Upper bound for anything the browser should do "at once".
pub const PROMPTLY: Duration = Duration::from_secs(20);

/// One browser at a time: two Chromiums on two cores would make the
/// token timings of the other test flaky.
pub static ONE_BROWSER: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// A self-signed certificate for the sites, as PEM files and as the rustls
/// configuration the test's own HTTPS servers use.
pub struct Certificate {
    pub cert: PathBuf,
    pub key: PathBuf,
    /// base64 of the SHA-256 of the key's SubjectPublicKeyInfo, for
    /// `--ignore-certificate-errors-spki-list`.
    pub spki: String,
    server: Arc<rustls::ServerConfig>,
    _dir: TempDir,
}

impl Certificate {
    pub fn new() -> Self {
        use base64::Engine;
        use rcgen::{CertificateParams, KeyPair, PublicKeyData};
        let key = KeyPair::generate().expect("a key");
        let names = [MEINGPT_HOST, APP_HOST, OTHER_HOST].map(str::to_owned);
        let leaf = CertificateParams::new(names.to_vec())
            .expect("certificate parameters")
            .self_signed(&key)
            .expect("the certificate");
        let dir = TempDir::new("embed-tls");
        let cert = dir.write("cert.pem", &leaf.pem());
        let key_path = dir.write("key.pem", &key.serialize_pem());
        let digest =
            aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, &key.subject_public_key_info());
        let spki = base64::engine::general_purpose::STANDARD.encode(digest.as_ref());
        let tls = meingpt_gateway::config::TlsConfig {
            cert: cert.clone(),
            key: key_path.clone(),
        };
        let mut server = (*tls.server_config().expect("TLS files")).clone();
        // The test's own servers speak HTTP/1.1 only.
        server.alpn_protocols = vec![b"http/1.1".to_vec()];
        Self {
            cert,
            key: key_path,
            spki,
            server: Arc::new(server),
            _dir: dir,
        }
    }

    /// The `[tls]` table of a gateway configuration.
    pub fn tls_toml(&self) -> String {
        format!(
            "[tls]\ncert = \"{}\"\nkey = \"{}\"\n",
            self.cert.display(),
            self.key.display()
        )
    }
}

/// Accepts TLS connections for axum (handshakes run on their own tasks,
/// so a connection that never finishes one holds up no other).
struct TlsListener {
    addr: SocketAddr,
    accepted: tokio::sync::mpsc::Receiver<(
        tokio_rustls::server::TlsStream<tokio::net::TcpStream>,
        SocketAddr,
    )>,
}

impl axum::serve::Listener for TlsListener {
    type Io = tokio_rustls::server::TlsStream<tokio::net::TcpStream>;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        match self.accepted.recv().await {
            Some(accepted) => accepted,
            None => std::future::pending().await,
        }
    }

    fn local_addr(&self) -> std::io::Result<SocketAddr> {
        Ok(self.addr)
    }
}

/// Serves `router` over HTTPS on 127.0.0.1; returns the port.
pub async fn serve_https(router: Router, certificate: &Certificate) -> u16 {
    let tcp = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = tcp.local_addr().expect("an address");
    let acceptor = TlsAcceptor::from(certificate.server.clone());
    let (send, accepted) = tokio::sync::mpsc::channel(64);
    tokio::spawn(async move {
        loop {
            let Ok((stream, peer)) = tcp.accept().await else {
                continue;
            };
            let acceptor = acceptor.clone();
            let send = send.clone();
            tokio::spawn(async move {
                let handshake = tokio::time::timeout(PATIENCE, acceptor.accept(stream)).await;
                if let Ok(Ok(tls)) = handshake {
                    let _ = send.send((tls, peer)).await;
                }
            });
        }
    });
    tokio::spawn(async move {
        let _ = axum::serve(TlsListener { addr, accepted }, router).await;
    });
    addr.port()
}

/// The gateway's meinGPT stand-in, served as `https://meingpt.test:PORT`
/// with tokens of `issuer`.
pub async fn serve_stand_in(issuer: Arc<MockIssuer>, certificate: &Certificate) -> (u16, StandIn) {
    let stand_in = StandIn::new(issuer);
    let service = stand_in.clone();
    let service = tower::ServiceExt::<axum::extract::Request>::map_response(
        service,
        |response: http::Response<String>| response.map(axum::body::Body::from),
    );
    let router = Router::new().fallback_service(service);
    (serve_https(router, certificate).await, stand_in)
}

/// The stand-in's address framing `app` (an address on `app.test`).
pub fn stand_in_url(port: u16, app: &str, controls: &str) -> String {
    let app: String = url_encoded(app);
    format!("https://{MEINGPT_HOST}:{port}/_meingpt/dev?app={app}&{controls}")
}

fn url_encoded(text: &str) -> String {
    text.bytes()
        .map(|b| match b {
            b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// The `.venv` Python of the rig, or `None` when the browser tests are
/// skipped; panics with how to make it otherwise.
pub fn python() -> Option<PathBuf> {
    let dir = repo_root().join("gateway/tests/rig/python");
    let python = dir.join(".venv/bin/python");
    if !python.is_file() {
        panic!(
            "the embed browser tests need gateway/tests/rig/python/.venv with Streamlit: run \
             `bash scripts/test.sh` (or set MEINGPT_SKIP_BROWSER=1 to skip them)"
        );
    }
    Some(python)
}

/// A Python script of `gateway/tests/rig/python`, with its arguments.
pub fn python_command(python: &Path, script: &str, args: &[&str]) -> Command {
    let dir = repo_root().join("gateway/tests/rig/python");
    let mut command = Command::new(python);
    command.arg(dir.join(script)).args(args).current_dir(&dir);
    command
}

/// The notes app (`notes.py`) on a loopback port.
pub fn start_notes(python: &Path) -> (Process, SocketAddr) {
    let port = free_port();
    let mut process = Process::spawn(
        "notes.py",
        python_command(python, "notes.py", &[&port.to_string()]),
    );
    process.wait_for_line("notes listening");
    (process, SocketAddr::from(([127, 0, 0, 1], port)))
}

/// What the notes app served, asked directly.
pub async fn notes_log(addr: SocketAddr) -> Vec<Value> {
    let response = crate::common::client()
        .get(format!("http://{addr}/_log"))
        .send()
        .await
        .expect("the notes app answers");
    serde_json::from_slice(&response.bytes().await.expect("a body")).expect("JSON")
}

/// Which cookies the browser keeps.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cookies {
    /// First-party and partitioned ones: third-party cookies are blocked.
    FirstPartyAndPartitioned,
    /// None at all (as, inside meinGPT's frame, Safari before 26.2, which
    /// blocks third-party cookies and does not know `Partitioned`).
    None,
}

/// chromedriver (in its own process group, with the Chromium it starts) and
/// a WebDriver session; everything is stopped when dropped.
pub struct Browser {
    client: Option<Client>,
    driver: Child,
    profile: PathBuf,
}

impl Browser {
    /// Starts Chromium, resolving `*.test` to 127.0.0.1 and trusting
    /// `certificate`; `None` when `MEINGPT_SKIP_BROWSER=1`.
    pub async fn start(certificate: &Certificate) -> Option<Self> {
        Self::start_with(certificate, Cookies::FirstPartyAndPartitioned).await
    }

    /// Starts Chromium as [`Browser::start`] does, keeping `cookies`.
    pub async fn start_with(certificate: &Certificate, cookies: Cookies) -> Option<Self> {
        if std::env::var("MEINGPT_SKIP_BROWSER").as_deref() == Ok("1") {
            eprintln!("MEINGPT_SKIP_BROWSER=1: skipping the browser test");
            return None;
        }
        let (Some(chromium), Some(chromedriver)) =
            (find_program("chromium"), find_program("chromedriver"))
        else {
            panic!(
                "the embed browser tests need Chromium and ChromeDriver: run `apt-get install \
                 chromium chromium-driver` (or set MEINGPT_SKIP_BROWSER=1 to skip them)"
            );
        };
        let port = free_port();
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
            "meingpt-embed-browser-{}-{}",
            std::process::id(),
            driver.id()
        ));
        let mut browser = Self {
            client: None,
            driver,
            profile,
        };
        let webdriver = format!("http://127.0.0.1:{port}");
        let http = crate::common::client();
        wait_for("chromedriver to listen", PROMPTLY, async || {
            let status = http.get(format!("{webdriver}/status")).send().await.ok()?;
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
                    "--window-size=1100,760",
                    "--host-resolver-rules=MAP *.test 127.0.0.1",
                    format!("--ignore-certificate-errors-spki-list={}", certificate.spki),
                    format!("--user-data-dir={}", browser.profile.display()),
                ],
                // Third-party cookies blocked, as browsers increasingly do
                // (all cookies, for a browser that keeps none in a frame).
                "prefs": {
                    "profile.cookie_controls_mode": 1,
                    "profile.block_third_party_cookies": true,
                    "profile.default_content_setting_values.cookies":
                        if cookies == Cookies::None { 2 } else { 1 },
                },
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

    pub fn client(&self) -> &Client {
        self.client.as_ref().expect("a session")
    }

    /// Opens `url` at the top.
    pub async fn open(&self, url: &str) {
        self.client()
            .goto(url)
            .await
            .unwrap_or_else(|e| panic!("cannot open {url}: {e}"));
    }

    /// Runs `script` in the current frame.
    pub async fn run(&self, script: &str) -> Value {
        self.client()
            .execute(script, vec![])
            .await
            .unwrap_or_else(|e| panic!("script failed: {e}"))
    }

    /// Switches to the top page.
    pub async fn enter_top(&self) {
        self.client()
            .enter_parent_frame()
            .await
            .expect("the top page");
    }

    /// Switches to the iframe with `id` on the top page.
    pub async fn enter(&self, id: &str) {
        let client = self.client();
        client.enter_parent_frame().await.expect("the top page");
        let frame = client
            .find(fantoccini::Locator::Id(id))
            .await
            .unwrap_or_else(|e| panic!("no iframe #{id}: {e}"));
        frame
            .enter_frame()
            .await
            .unwrap_or_else(|e| panic!("cannot enter #{id}: {e}"));
    }

    /// The text of the element with `id` in the current frame, if any.
    pub async fn text(&self, id: &str) -> Option<String> {
        self.run(&format!(
            "const e = document.getElementById({}); return e ? e.textContent : null;",
            Value::from(id)
        ))
        .await
        .as_str()
        .map(str::to_owned)
    }

    /// The state of the gateway's first-load page in the current frame
    /// (`None` when the frame shows something else).
    pub async fn sign_in_state(&self) -> Option<String> {
        self.run(
            "const e = document.getElementById('meingpt-embed'); \
             return e ? e.dataset.state : null;",
        )
        .await
        .as_str()
        .map(str::to_owned)
    }

    /// Waits until the current frame shows the first-load page in `state`.
    pub async fn wait_for_sign_in_state(&self, state: &str) {
        wait_for(&format!("the page to say {state}"), PROMPTLY, async || {
            (self.sign_in_state().await.as_deref() == Some(state)).then_some(())
        })
        .await;
    }

    /// Clicks the element with `id` in the current frame.
    pub async fn click(&self, id: &str) {
        self.client()
            .find(fantoccini::Locator::Id(id))
            .await
            .unwrap_or_else(|e| panic!("no #{id}: {e}"))
            .click()
            .await
            .unwrap_or_else(|e| panic!("cannot click #{id}: {e}"));
    }

    /// A PNG of the whole window.
    pub async fn screenshot(&self) -> Vec<u8> {
        self.client()
            .enter_parent_frame()
            .await
            .expect("the top page");
        self.client().screenshot().await.expect("a screenshot")
    }

    /// Ends the session (Chromium quits).
    pub async fn quit(mut self) {
        if let Some(client) = self.client.take() {
            let _ = client.close().await;
        }
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        // Chromium runs in chromedriver's process group: stop the group.
        let group = format!("-{}", self.driver.id());
        let _ = Command::new("kill")
            .args(["-KILL", "--", &group])
            .stderr(Stdio::null())
            .status();
        let _ = self.driver.kill();
        let _ = self.driver.wait();
        let _ = std::fs::remove_dir_all(&self.profile);
    }
}

/// Polls `probe` every 100 ms until it returns `Some`, at most `within`.
pub async fn wait_for<T>(
    what: &str,
    within: Duration,
    mut probe: impl AsyncFnMut() -> Option<T>,
) -> T {
    let deadline = Instant::now() + within;
    loop {
        if let Some(found) = probe().await {
            return found;
        }
        assert!(Instant::now() < deadline, "waited {within:?} for {what}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// A gateway configuration: TLS (when given), `[auth]` for `issuer`, meinGPT at the
/// stand-ins' origins (on `stand_in_ports`), and `routes`.
pub fn gateway_config(
    certificate: Option<&Certificate>,
    issuer: &MockIssuer,
    stand_in_ports: &[u16],
    routes: &str,
) -> String {
    let origins: Vec<String> = stand_in_ports
        .iter()
        .map(|port| format!("\"https://{MEINGPT_HOST}:{port}\""))
        .collect();
    format!(
        "listen = \"127.0.0.1:0\"\n\n{tls}\n[auth]\norganizations = [\"{org}\"]\nissuer = \"{iss}\"\n\
         jwks_url = \"{jwks}\"\n\n[embed]\nmeingpt_origins = [{origins}]\n\n{routes}",
        origins = origins.join(", "),
        tls = certificate.map_or(String::new(), Certificate::tls_toml),
        org = issuer.organization(),
        iss = issuer.issuer(),
        jwks = issuer.jwks_url(),
    )
}

//! Shared pieces of the gateway tests: an upstream that records what it
//! receives, the gateway in-process (from TOML text) and as the binary.

pub mod as_written;
pub mod binary;
pub mod raw;

pub use as_written::{PATHS_READ_AS_ANOTHER_ROUTE, get_as_written};

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::{Request, State, WebSocketUpgrade, ws::Message};
use axum::http::{HeaderMap, StatusCode};
use axum::response::sse::{Event, Sse};
use axum::response::{IntoResponse, Response};
use axum::routing::{self, any};
use axum::{Json, Router};
use meingpt_auth::testing::MockIssuer;
use meingpt_gateway::config::{Settings, parse};
use serde_json::{Value, json};
use tokio::sync::{Notify, oneshot};

/// How long any single wait in a test may take before it fails.
pub const PATIENCE: Duration = Duration::from_secs(20);

/// What the upstream saw of one request.
#[derive(Debug, Clone)]
pub struct Received {
    pub method: String,
    pub uri: String,
    pub headers: HeaderMap,
}

impl Received {
    /// The one value of `name`, if sent.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .get(name)
            .map(|v| v.to_str().expect("ASCII header"))
    }
}

#[derive(Default)]
struct UpstreamState {
    received: Mutex<Vec<Received>>,
    count: AtomicUsize,
    /// Opened by the test to let `/sse` send its second event.
    sse_gate: Notify,
    /// Opened by the test to let `/hold` answer.
    hold_gate: Notify,
    /// Told when a request arrives.
    arrived: Notify,
    /// Request body bytes the echo read, over all requests.
    body_bytes: AtomicUsize,
}

/// A real HTTP upstream on 127.0.0.1 that records every request:
/// `/sse` (two events, the second only once the test says so), `/slow/{ms}`,
/// `/hold` (answers only once the test says so),
/// `/ws` (WebSocket echo), `/third-party/*` of a third-party API that
/// requires `Authorization: Bearer sk-test-secret`, `/hop-by-hop` (an answer
/// with hop-by-hop headers), and anything else echoing the request as JSON.
pub struct Upstream {
    pub addr: SocketAddr,
    state: Arc<UpstreamState>,
}

pub const THIRD_PARTY_KEY: &str = "sk-test-secret-4711";

impl Upstream {
    pub async fn start() -> Self {
        let state = Arc::new(UpstreamState::default());
        let app = Router::new()
            .route("/sse", routing::get(sse))
            .route("/slow/{ms}", any(slow))
            .route("/hold", any(hold))
            .route("/ws", routing::get(websocket))
            .route("/third-party/{*rest}", any(third_party))
            .route("/hop-by-hop", any(hop_by_hop))
            .fallback(echo)
            .layer(axum::middleware::from_fn_with_state(state.clone(), record))
            .with_state(state.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Self { addr, state }
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// How many requests reached the upstream.
    pub fn count(&self) -> usize {
        self.state.count.load(Ordering::SeqCst)
    }

    /// The last request the upstream received.
    pub fn last(&self) -> Received {
        self.state
            .received
            .lock()
            .unwrap()
            .last()
            .cloned()
            .expect("the upstream received a request")
    }

    /// How many request body bytes the echo read, over all requests
    /// (also of bodies that broke off).
    pub fn body_bytes(&self) -> usize {
        self.state.body_bytes.load(Ordering::SeqCst)
    }

    /// Lets `/sse` send its second event.
    pub fn open_sse_gate(&self) {
        self.state.sse_gate.notify_one();
    }

    /// Lets `/hold` answer.
    pub fn open_hold_gate(&self) {
        self.state.hold_gate.notify_one();
    }

    /// Waits until `n` requests have arrived.
    pub async fn wait_for_requests(&self, n: usize) {
        tokio::time::timeout(PATIENCE, async {
            loop {
                let arrived = self.state.arrived.notified();
                if self.count() >= n {
                    return;
                }
                arrived.await;
            }
        })
        .await
        .expect("the upstream received the request in time");
    }
}

async fn record(
    State(state): State<Arc<UpstreamState>>,
    request: Request,
    next: axum::middleware::Next,
) -> Response {
    state.received.lock().unwrap().push(Received {
        method: request.method().to_string(),
        uri: request.uri().to_string(),
        headers: request.headers().clone(),
    });
    state.count.fetch_add(1, Ordering::SeqCst);
    state.arrived.notify_waiters();
    next.run(request).await
}

async fn echo(State(state): State<Arc<UpstreamState>>, request: Request) -> Json<Value> {
    use http_body_util::BodyExt;
    let headers: HashMap<String, String> = request
        .headers()
        .iter()
        .map(|(k, v)| {
            (
                k.to_string(),
                String::from_utf8_lossy(v.as_bytes()).into_owned(),
            )
        })
        .collect();
    let mut body = request.into_body();
    let mut body_len = 0;
    while let Some(Ok(frame)) = body.frame().await {
        if let Some(data) = frame.data_ref() {
            body_len += data.len();
            state.body_bytes.fetch_add(data.len(), Ordering::SeqCst);
        }
    }
    Json(json!({ "headers": headers, "body_len": body_len }))
}

async fn sse(State(state): State<Arc<UpstreamState>>) -> impl IntoResponse {
    let stream = async_stream(state);
    Sse::new(stream)
}

fn async_stream(
    state: Arc<UpstreamState>,
) -> impl futures_util::Stream<Item = Result<Event, std::convert::Infallible>> {
    futures_util::stream::unfold((state, 0), |(state, n)| async move {
        match n {
            0 => Some((Ok(Event::default().data("one")), (state, 1))),
            1 => {
                state.sse_gate.notified().await;
                Some((Ok(Event::default().data("two")), (state, 2)))
            }
            _ => None,
        }
    })
}

async fn slow(axum::extract::Path(ms): axum::extract::Path<u64>) -> &'static str {
    tokio::time::sleep(Duration::from_millis(ms)).await;
    "finally\n"
}

async fn hold(State(state): State<Arc<UpstreamState>>) -> &'static str {
    state.hold_gate.notified().await;
    "held and answered\n"
}

async fn websocket(upgrade: WebSocketUpgrade, headers: HeaderMap) -> Response {
    let user = headers
        .get("x-auth-request-user")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("-")
        .to_owned();
    upgrade.on_upgrade(move |mut socket| async move {
        if socket
            .send(Message::text(format!("user {user}")))
            .await
            .is_err()
        {
            return;
        }
        while let Some(Ok(message)) = socket.recv().await {
            if let Message::Text(text) = message
                && socket
                    .send(Message::text(format!("echo {}", text.as_str())))
                    .await
                    .is_err()
            {
                return;
            }
        }
    })
}

async fn hop_by_hop() -> Response {
    (
        [
            ("connection", "close, x-private-hop"),
            ("x-private-hop", "for the next hop only"),
            ("keep-alive", "timeout=5"),
            ("proxy-authenticate", "Basic realm=\"upstream\""),
            ("upgrade", "h2c"),
            ("trailer", "x-checksum"),
            ("x-end-to-end", "kept"),
        ],
        "hops\n",
    )
        .into_response()
}

async fn third_party(headers: HeaderMap) -> Response {
    let expected = format!("Bearer {THIRD_PARTY_KEY}");
    match headers.get("authorization").and_then(|v| v.to_str().ok()) {
        Some(value) if value == expected => {
            Json(json!({ "completion": "Hello from the API" })).into_response()
        }
        _ => (StatusCode::UNAUTHORIZED, "missing or wrong API key\n").into_response(),
    }
}

/// The `[auth]` table for `issuer`.
pub fn auth_toml(issuer: &MockIssuer) -> String {
    format!(
        "[auth]\norganizations = [\"{}\"]\nissuer = \"{}\"\njwks_url = \"{}\"\n",
        issuer.organization(),
        issuer.issuer(),
        issuer.jwks_url()
    )
}

/// The gateway running in-process; stopped (gracefully) when dropped.
pub struct Gateway {
    pub base: String,
    pub metrics: Option<SocketAddr>,
    /// Dropping it shuts the gateway down.
    _stop: oneshot::Sender<()>,
    task: Option<tokio::task::JoinHandle<()>>,
}

impl Gateway {
    /// Starts a gateway on 127.0.0.1:0 from `toml` (which must not set
    /// `listen`); `env` stands for the environment.
    pub async fn start(toml: &str, env: &[(&str, &str)]) -> Self {
        Self::try_start(toml, env)
            .await
            .expect("the configuration is valid")
    }

    pub async fn try_start(
        toml: &str,
        env: &[(&str, &str)],
    ) -> Result<Self, meingpt_gateway::config::ConfigError> {
        let mut vars: HashMap<String, String> = env
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        vars.entry("LISTEN_ADDR".into())
            .or_insert_with(|| "127.0.0.1:0".into());
        let lookup = move |name: &str| vars.get(name).cloned();
        let file = parse(toml)?;
        let settings = Settings::from_config(file, Path::new(env!("CARGO_MANIFEST_DIR")), &lookup)?;
        let started = meingpt_gateway::app::start(settings).await?;
        let base = started.base_url();
        let metrics = started.metrics_addr();
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(started.serve(async move {
            let _ = stopped.await;
        }));
        Ok(Self {
            base,
            metrics,
            _stop: stop,
            task: Some(task),
        })
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }
}

impl Drop for Gateway {
    fn drop(&mut self) {
        if let Some(task) = &self.task {
            task.abort();
        }
    }
}

/// A plain HTTP client that never follows redirects.
pub fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
}

/// A response read whole: status, headers, body text.
#[derive(Debug)]
pub struct Answer {
    pub status: u16,
    pub headers: reqwest::header::HeaderMap,
    pub body: String,
}

impl Answer {
    pub async fn read(response: reqwest::Response) -> Self {
        let status = response.status().as_u16();
        let headers = response.headers().clone();
        let body = response.text().await.unwrap();
        Self {
            status,
            headers,
            body,
        }
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).map(|v| v.to_str().unwrap())
    }

    pub fn json(&self) -> Value {
        serde_json::from_str(&self.body).unwrap_or_else(|e| panic!("not JSON ({e}): {}", self.body))
    }
}

/// GET `url` with `headers`.
pub async fn get(url: &str, headers: &[(&str, &str)]) -> Answer {
    let mut request = client().get(url);
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    Answer::read(request.send().await.expect("the gateway answers")).await
}

/// The token's middle segment.
pub fn payload_of(token: &str) -> &str {
    token.split('.').nth(1).unwrap()
}

/// GET with the path sent exactly as written (no URL normalization, unlike
/// browsers and reqwest); returns the status.
pub async fn get_raw(url: &str, headers: &[(&str, &str)]) -> u16 {
    use hyper_util::client::legacy::Client;
    use hyper_util::rt::TokioExecutor;
    let client: Client<_, http_body_util::Empty<bytes::Bytes>> =
        Client::builder(TokioExecutor::new()).build_http();
    let mut request = http::Request::get(url.parse::<http::Uri>().unwrap());
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    let response = client
        .request(request.body(http_body_util::Empty::new()).unwrap())
        .await
        .expect("the gateway answers");
    response.status().as_u16()
}

/// A fresh directory under the system's temporary directory.
pub fn temp_dir(name: &str) -> std::path::PathBuf {
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    let dir = std::env::temp_dir().join(format!(
        "meingpt-gateway-test-{}-{}-{name}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::SeqCst)
    ));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

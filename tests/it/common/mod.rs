//! Shared test helpers: a real server on 127.0.0.1 in front of the
//! quickstart-like routes, and a small client that returns what a user sees.

pub mod answers;
pub mod example;

use std::net::SocketAddr;

use aws_lc_rs::rand::{SecureRandom, SystemRandom};
use axum::routing::get;
use axum::{Json, Router};
use meingpt_auth::{MeinGptAuth, MeinGptUser, Role, require_role, require_team_id};

/// The routes every end-to-end test uses, as in the quickstart example.
pub fn app(auth: &MeinGptAuth) -> Router {
    Router::new()
        .route("/me", get(|user: MeinGptUser| async move { Json(user) }))
        .route(
            "/admin",
            get(|| async { "admin area" }).route_layer(require_role(Role::Admin)),
        )
        .route(
            "/engineering",
            get(|| async { "engineering area" }).route_layer(require_team_id("team-eng")),
        )
        .layer(auth.layer())
        .route("/health", get(|| async { "ok" }))
}

/// Serves `router` on 127.0.0.1 and returns its base URL.
pub async fn serve(router: Router) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr: SocketAddr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        axum::serve(listener, router).await.unwrap();
    });
    format!("http://{addr}")
}

/// What a client sees of one response.
#[derive(Debug)]
pub struct Seen {
    pub status: u16,
    pub www_authenticate: Option<String>,
    pub retry_after: Option<String>,
    pub body: String,
}

impl Seen {
    /// Reads what a client sees of `response`.
    pub async fn read(response: reqwest::Response) -> Self {
        let header = |name: &str| {
            response
                .headers()
                .get(name)
                .map(|v| v.to_str().unwrap().to_owned())
        };
        let www_authenticate = header("www-authenticate");
        let retry_after = header("retry-after");
        let status = response.status().as_u16();
        let body = response.text().await.unwrap();
        Seen {
            status,
            www_authenticate,
            retry_after,
            body,
        }
    }

    /// The body as JSON.
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.body).unwrap_or_else(|_| panic!("not JSON: {}", self.body))
    }

    /// Asserts a `401 invalid_token` with the given fixed description.
    pub fn assert_invalid_token(&self, description: &str) {
        assert_eq!(self.status, 401, "body: {}", self.body);
        let expected = format!(
            "Bearer realm=\"meingpt\", error=\"invalid_token\", error_description=\"{description}\""
        );
        assert_eq!(self.www_authenticate.as_deref(), Some(expected.as_str()));
        assert_eq!(self.json()["error"], "invalid_token");
        assert_eq!(self.json()["error_description"], description);
    }
}

/// `GET url` with the given headers.
pub async fn get_with(url: &str, headers: &[(&str, &str)]) -> Seen {
    let client = reqwest::Client::new();
    let mut request = client.get(url);
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    let response = request.send().await.unwrap();
    Seen::read(response).await
}

/// `GET url` with `X-meinGPT-JWT: token`.
pub async fn get_with_token(url: &str, token: &str) -> Seen {
    get_with(url, &[("x-meingpt-jwt", token)]).await
}

/// Status, every header but `date`, and body, as a client sees them.
pub async fn everything_seen(url: &str, token: &str) -> (u16, Vec<(String, String)>, String) {
    let response = reqwest::Client::new()
        .get(url)
        .header("x-meingpt-jwt", token)
        .send()
        .await
        .unwrap();
    let status = response.status().as_u16();
    let mut headers: Vec<(String, String)> = response
        .headers()
        .iter()
        .filter(|(name, _)| *name != "date")
        .map(|(name, value)| (name.to_string(), value.to_str().unwrap().to_owned()))
        .collect();
    headers.sort();
    (status, headers, response.text().await.unwrap())
}

/// A random `kid` no issuer publishes.
pub fn random_kid() -> String {
    let mut bytes = [0u8; 16];
    SystemRandom::new().fill(&mut bytes).unwrap();
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Collects everything a `tracing` subscriber writes.
#[derive(Clone, Default)]
pub struct CapturedLog(std::sync::Arc<std::sync::Mutex<Vec<u8>>>);

impl std::io::Write for CapturedLog {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(bytes);
        Ok(bytes.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl CapturedLog {
    /// Everything written so far.
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().unwrap()).into_owned()
    }
}

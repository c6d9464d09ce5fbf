//! A meinGPT stand-in for development: a page that frames the app exactly
//! as meinGPT does, with tokens of the development issuer.
//!
//! `GET /_meingpt/dev` shows a meinGPT-like page with the app in an iframe
//! (`#token=…` in the frame's address) and answers the app's
//! `MEINGPT_TOKEN_REFRESH` messages with fresh tokens from `POST
//! /_meingpt/dev/token`. Its controls (query parameters, and the form on
//! the page):
//!
//! | parameter | meaning |
//! | --- | --- |
//! | `user` | `admin` (default) or `member`: the demo user the tokens are for |
//! | `lifetime` | seconds each token lives (default 3600; 5 to 86400) |
//! | `error` | `1`: the app is framed without a token, and every refresh is answered `MEINGPT_TOKEN_ERROR` |
//! | `app` | the address to frame; by default this gateway under its other loopback name (`localhost` ↔ `127.0.0.1`), so that the app is another site than the page, as in production |
//! | `path` | the path to open on the default `app` |
//! | `also` | a second frame on the page (another Custom AI App) |
//!
//! The gateway in development mode serves it and prints its address.

use std::convert::Infallible;
use std::future::{Ready, ready};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::task::{Context, Poll};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use http::header::{self, HeaderValue};
use http::{Method, Request, Response, StatusCode};
use meingpt_auth::testing::MockIssuer;
use percent_encoding::percent_decode_str;
use tower::Service;

/// Where the stand-in lives on the gateway.
pub const STAND_IN_PATH: &str = "/_meingpt/dev";

/// The stand-in page and its token endpoint. Cheap to clone.
#[derive(Clone)]
pub struct StandIn {
    shared: Arc<Shared>,
}

struct Shared {
    issuer: Arc<MockIssuer>,
    tokens: AtomicUsize,
}

impl std::fmt::Debug for StandIn {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StandIn")
            .field("issuer", &self.shared.issuer.issuer())
            .finish()
    }
}

impl StandIn {
    /// A stand-in handing out tokens of `issuer`.
    pub fn new(issuer: Arc<MockIssuer>) -> Self {
        Self {
            shared: Arc::new(Shared {
                issuer,
                tokens: AtomicUsize::new(0),
            }),
        }
    }

    /// How many tokens the stand-in handed out (the page's first and every
    /// refresh).
    pub fn tokens_handed_out(&self) -> usize {
        self.shared.tokens.load(Ordering::SeqCst)
    }

    /// Whether `path` is the stand-in's.
    pub fn serves(path: &str) -> bool {
        path == STAND_IN_PATH
            || path
                .strip_prefix(STAND_IN_PATH)
                .is_some_and(|rest| rest.starts_with('/'))
    }
}

/// The controls, from the query string.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Controls {
    admin: bool,
    lifetime: Duration,
    error: bool,
    app: Option<String>,
    path: String,
    also: Option<String>,
}

impl Controls {
    fn parse(query: Option<&str>) -> Self {
        let mut controls = Controls {
            admin: true,
            lifetime: Duration::from_secs(3600),
            error: false,
            app: None,
            path: "/".to_owned(),
            also: None,
        };
        for pair in query.unwrap_or("").split('&') {
            let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
            let value = percent_decode_str(&value.replace('+', " "))
                .decode_utf8_lossy()
                .into_owned();
            match name {
                "user" => controls.admin = value != "member",
                "lifetime" => {
                    if let Ok(seconds) = value.parse::<u64>() {
                        controls.lifetime = Duration::from_secs(seconds.clamp(5, 86_400));
                    }
                }
                "error" => controls.error = value == "1",
                "app" if is_web_address(&value) => controls.app = Some(value),
                "path" if value.starts_with('/') => controls.path = value,
                "also" if is_web_address(&value) => controls.also = Some(value),
                _ => {}
            }
        }
        controls
    }

    fn query(&self) -> String {
        format!(
            "user={}&lifetime={}",
            if self.admin { "admin" } else { "member" },
            self.lifetime.as_secs()
        )
    }
}

fn is_web_address(value: &str) -> bool {
    (value.starts_with("https://") || value.starts_with("http://"))
        && !value.contains(['"', '<', '>', '\'', ' ', '#'])
}

/// This gateway under its other loopback name: `localhost` for
/// `127.0.0.1` and the other way round, same scheme and port.
fn other_loopback_name(scheme: &str, host: &str) -> Option<String> {
    let (name, port) = match host.rsplit_once(':') {
        Some((name, port)) if port.bytes().all(|b| b.is_ascii_digit()) => (name, Some(port)),
        _ => (host, None),
    };
    let other = match name {
        "localhost" => "127.0.0.1",
        "127.0.0.1" => "localhost",
        _ => return None,
    };
    Some(match port {
        Some(port) => format!("{scheme}://{other}:{port}"),
        None => format!("{scheme}://{other}"),
    })
}

impl<B> Service<Request<B>> for StandIn {
    type Response = Response<String>;
    type Error = Infallible;
    type Future = Ready<Result<Response<String>, Infallible>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: Request<B>) -> Self::Future {
        ready(Ok(self.answer(&request)))
    }
}

impl StandIn {
    fn answer<B>(&self, request: &Request<B>) -> Response<String> {
        let path = request.uri().path();
        let controls = Controls::parse(request.uri().query());
        let rest = path.strip_prefix(STAND_IN_PATH).unwrap_or(path);
        match (request.method(), rest) {
            (&Method::POST, "/token") => self.token(&controls),
            (&Method::GET, "" | "/") => {
                let scheme = request
                    .extensions()
                    .get::<crate::server::ClientInfo>()
                    .map_or("http", |info| if info.tls { "https" } else { "http" });
                let host = request
                    .headers()
                    .get(header::HOST)
                    .and_then(|value| value.to_str().ok())
                    .unwrap_or("");
                let app = match &controls.app {
                    Some(app) => app.clone(),
                    None => match other_loopback_name(scheme, host) {
                        Some(base) => format!("{base}{}", controls.path),
                        None => {
                            return text(
                                StatusCode::BAD_REQUEST,
                                "open the stand-in at localhost or 127.0.0.1, or name the app \
                                 to frame with ?app=https://…",
                            );
                        }
                    },
                };
                self.page(&controls, &app)
            }
            _ => text(StatusCode::NOT_FOUND, "not found"),
        }
    }

    fn mint(&self, controls: &Controls) -> (String, u64) {
        let issuer = &self.shared.issuer;
        let builder = if controls.admin {
            issuer.demo_admin()
        } else {
            issuer.demo_member()
        };
        let token = builder.expires_in(controls.lifetime).sign();
        let expires_at = (SystemTime::now() + controls.lifetime)
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as u64);
        self.shared.tokens.fetch_add(1, Ordering::SeqCst);
        (token, expires_at)
    }

    fn token(&self, controls: &Controls) -> Response<String> {
        let (token, expires_at) = self.mint(controls);
        let mut response = Response::new(
            serde_json::json!({ "token": token, "expiresAt": expires_at }).to_string(),
        );
        response.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
        response
            .headers_mut()
            .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
        response
    }

    fn page(&self, controls: &Controls, app: &str) -> Response<String> {
        let frame = if controls.error {
            app.to_owned()
        } else {
            let (token, _) = self.mint(controls);
            format!("{app}#token={token}")
        };
        let also = controls.also.as_deref().map_or(String::new(), |also| {
            format!(r#"<iframe id="also" title="another Custom AI App" src="{also}"></iframe>"#)
        });
        let config = serde_json::json!({
            "token": format!("{STAND_IN_PATH}/token?{}", controls.query()),
            "error": controls.error,
        })
        .to_string()
        .replace('<', "\\u003c");
        let body = PAGE
            .replace("{frame}", &frame)
            .replace("{also}", &also)
            .replace("{config}", &config)
            .replace("{issuer}", self.shared.issuer.issuer())
            .replace("{member}", if controls.admin { "" } else { " selected" })
            .replace("{lifetime}", &controls.lifetime.as_secs().to_string())
            .replace("{error}", if controls.error { " checked" } else { "" })
            .replace(
                "{app}",
                &controls.app.as_deref().map_or(String::new(), |app| {
                    format!(r#"<input type="hidden" name="app" value="{app}">"#)
                }),
            );
        let mut response = Response::new(body);
        let headers = response.headers_mut();
        headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("text/html; charset=utf-8"),
        );
        headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
        response
    }
}

fn text(status: StatusCode, message: &str) -> Response<String> {
    let mut response = Response::new(format!("{message}\n"));
    *response.status_mut() = status;
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    response
}

const PAGE: &str = r#"<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<title>meinGPT (development stand-in)</title>
<style>
  body { margin: 0; font-family: system-ui, sans-serif; background: #0f172a; color: #e2e8f0; }
  header { display: flex; gap: 1rem; align-items: center; padding: .6rem 1rem; }
  header strong { font-size: 1.05rem; }
  header small { color: #94a3b8; }
  form { display: flex; gap: .6rem; align-items: center; margin-left: auto; font-size: .8rem; color: #cbd5e1; }
  form input[type=number] { width: 5rem; }
  #app { display: block; width: calc(100% - 2rem); height: 560px; margin: 0 1rem; border: 0;
         border-radius: .6rem; background: #fff; }
  #also { width: calc(100% - 2rem); height: 90px; margin: .5rem 1rem; border: 1px dashed #475569; }
  footer { padding: .5rem 1rem; font-size: .8rem; color: #94a3b8; }
</style></head>
<body>
<header><strong>meinGPT</strong><small>development stand-in · tokens of {issuer}</small>
<form method="get">
  {app}
  <label>user <select name="user"><option value="admin">Ada Admin (admin)</option>
    <option value="member"{member}>Max Member (member)</option></select></label>
  <label>token lifetime (s) <input type="number" name="lifetime" min="5" value="{lifetime}"></label>
  <label><input type="checkbox" name="error" value="1"{error}> answer with MEINGPT_TOKEN_ERROR</label>
  <button>Open again</button>
</form></header>
<iframe id="app" title="Custom AI App" src="{frame}"></iframe>
{also}
<footer>Token refreshes answered: <span id="answered">0</span> · refused: <span id="refused">0</span></footer>
<script>
(() => {
  const config = {config};
  const frame = document.getElementById('app');
  const appOrigin = new URL(frame.src).origin;
  const count = (id) => {
    const element = document.getElementById(id);
    element.textContent = String(Number(element.textContent) + 1);
  };
  window.addEventListener('message', async (event) => {
    if (event.source !== frame.contentWindow || event.origin !== appOrigin) return;
    if (!event.data || event.data.type !== 'MEINGPT_TOKEN_REFRESH') return;
    if (config.error) {
      event.source.postMessage({ type: 'MEINGPT_TOKEN_ERROR', error: 'refused by the stand-in' }, appOrigin);
      count('refused');
      return;
    }
    try {
      const response = await fetch(config.token, { method: 'POST' });
      if (!response.ok) throw new Error('the token endpoint answered ' + response.status);
      const { token, expiresAt } = await response.json();
      event.source.postMessage({ type: 'MEINGPT_TOKEN_RESPONSE', token, expiresAt }, appOrigin);
      count('answered');
    } catch (error) {
      event.source.postMessage({ type: 'MEINGPT_TOKEN_ERROR', error: String(error) }, appOrigin);
      count('refused');
    }
  });
})();
</script>
</body></html>
"#;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn controls_are_read_from_the_query() {
        let controls = Controls::parse(Some(
            "user=member&lifetime=20&error=1&also=https%3A%2F%2Fother.test%2F&path=/x",
        ));
        assert!(!controls.admin);
        assert_eq!(controls.lifetime, Duration::from_secs(20));
        assert!(controls.error);
        assert_eq!(controls.also.as_deref(), Some("https://other.test/"));
        assert_eq!(controls.path, "/x");
        // Nonsense is ignored, never echoed into the page.
        let controls = Controls::parse(Some("app=javascript:alert(1)&lifetime=1"));
        assert_eq!(controls.app, None);
        assert_eq!(controls.lifetime, Duration::from_secs(5));
        assert_eq!(Controls::parse(Some("app=https://a.test/%22%3E")).app, None);
    }

    #[test]
    fn the_app_is_framed_under_the_other_loopback_name() {
        assert_eq!(
            other_loopback_name("http", "localhost:3000").as_deref(),
            Some("http://127.0.0.1:3000")
        );
        assert_eq!(
            other_loopback_name("https", "127.0.0.1").as_deref(),
            Some("https://localhost")
        );
        assert_eq!(other_loopback_name("http", "app.example:80"), None);
    }
}

//! The app behind the gateway. Every request carries the soak's request id
//! and the user the client meant (`X-Soak-Request: 17 user member-2`, `… anonymous`
//! for a public route, `… refused` for a request that must never arrive);
//! the app checks the identity headers it got against that user, looks for
//! any token in the request, answers with the id and the user the headers
//! named, and streams Server-Sent Events under `/events/`.
//!
//! It runs on a runtime of its own on a thread of its own: stopping it
//! drops the runtime, which closes the listener and every connection, as a
//! process restart would.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::extract::State;
use axum::http::{HeaderMap, Uri};
use axum::response::sse::{Event, Sse};
use axum::response::{IntoResponse, Response};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use tokio_stream::StreamExt;
use tokio_stream::wrappers::IntervalStream;

use crate::common::IDENTITY_HEADERS;
use crate::users::{USERS, User};

/// The header that tells the upstream who the client meant.
pub const REQUEST_HEADER: &str = "x-soak-request";

/// Headers that carry a token to a verifier.
const TOKEN_HEADERS: [&str; 2] = ["x-meingpt-jwt", "authorization"];

/// Whom the client meant, as the upstream must see it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Expect {
    /// Signed in as `USERS[i]`.
    User(usize),
    /// A public route: no identity at all.
    Anonymous,
    /// A request the gateway must refuse: it must never arrive.
    Refused,
}

/// `user member-2`, `anonymous`, `refused`.
impl std::fmt::Display for Expect {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Expect::User(i) => write!(f, "user {}", USERS[*i].sub),
            Expect::Anonymous => f.write_str("anonymous"),
            Expect::Refused => f.write_str("refused"),
        }
    }
}

impl Expect {
    /// The `X-Soak-Request` value of request `id`.
    pub fn header_value(self, id: u64) -> String {
        format!("{id} {self}")
    }

    fn parse(value: &str) -> Option<(u64, Self)> {
        let mut words = value.split(' ');
        let id = words.next()?.parse().ok()?;
        let expect = match (words.next()?, words.next()) {
            ("user", Some(sub)) => Expect::User(USERS.iter().position(|u| u.sub == sub)?),
            ("anonymous", None) => Expect::Anonymous,
            ("refused", None) => Expect::Refused,
            _ => return None,
        };
        Some((id, expect))
    }
}

/// What the upstream served and found, over all its restarts.
#[derive(Default)]
pub struct Ledger {
    pub served: AtomicU64,
    pub as_user: AtomicU64,
    pub anonymous: AtomicU64,
    pub streams: AtomicU64,
    /// Requests whose identity headers named someone other than the user
    /// the client meant (or anyone, on a public route), carried a copy in
    /// another spelling, or should have been refused.
    pub wrong_identities: AtomicU64,
    /// Requests that carried a token (in any header, the path or query).
    pub tokens_seen: AtomicU64,
    /// The first findings of each kind, for the report (never a token or
    /// a header's value).
    identity_findings: Mutex<Vec<String>>,
    token_findings: Mutex<Vec<String>>,
}

impl Ledger {
    /// The first wrong identities, then the first tokens seen.
    pub fn findings(&self) -> Vec<String> {
        let identities = self.identity_findings.lock().unwrap().clone();
        let tokens = self.token_findings.lock().unwrap().clone();
        identities.into_iter().chain(tokens).collect()
    }

    fn wrong_identity(&self, what: String) {
        self.wrong_identities.fetch_add(1, Ordering::Relaxed);
        Self::keep(&self.identity_findings, what);
    }

    fn token_seen(&self, what: String) {
        self.tokens_seen.fetch_add(1, Ordering::Relaxed);
        Self::keep(&self.token_findings, what);
    }

    fn keep(findings: &Mutex<Vec<String>>, what: String) {
        let mut findings = findings.lock().unwrap();
        if findings.len() < 10 {
            findings.push(what);
        }
    }
}

/// The upstream at a fixed address, started and stopped at will.
pub struct Upstream {
    pub addr: SocketAddr,
    pub ledger: Arc<Ledger>,
    organization: String,
    running: Option<(
        tokio::sync::oneshot::Sender<()>,
        std::thread::JoinHandle<()>,
    )>,
}

impl Upstream {
    pub fn new(addr: SocketAddr, organization: &str) -> Self {
        Self {
            addr,
            ledger: Arc::default(),
            organization: organization.to_owned(),
            running: None,
        }
    }

    /// Starts listening; returns once it does.
    pub fn start(&mut self) {
        assert!(self.running.is_none(), "the upstream runs already");
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let (bound, is_bound) = std::sync::mpsc::channel();
        let state = Arc::new((self.ledger.clone(), self.organization.clone()));
        let addr = self.addr;
        let thread = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("the upstream's runtime");
            runtime.block_on(async move {
                let listener = bind(addr).await;
                let _ = bound.send(());
                let app = Router::new().fallback(serve).with_state(state);
                tokio::select! {
                    _ = async { axum::serve(listener, app).await } => {}
                    _ = stopped => {}
                }
            });
            // Dropping the runtime drops every connection task: each
            // connection is closed, as when the process goes away.
            drop(runtime);
        });
        is_bound
            .recv_timeout(Duration::from_secs(20))
            .expect("the upstream listens");
        self.running = Some((stop, thread));
    }

    /// Stops it: the listener and every connection are closed.
    pub fn stop(&mut self) {
        if let Some((stop, thread)) = self.running.take() {
            let _ = stop.send(());
            let _ = thread.join();
        }
    }
}

impl Drop for Upstream {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Binds `addr` again after a restart (a moment ago its old listener held it).
async fn bind(addr: SocketAddr) -> tokio::net::TcpListener {
    for _ in 0..100 {
        if let Ok(listener) = tokio::net::TcpListener::bind(addr).await {
            return listener;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("the upstream cannot listen on {addr} again");
}

type Shared = Arc<(Arc<Ledger>, String)>;

async fn serve(State(state): State<Shared>, uri: Uri, headers: HeaderMap) -> Response {
    let (ledger, organization) = &*state;
    ledger.served.fetch_add(1, Ordering::Relaxed);
    let label = headers
        .get(REQUEST_HEADER)
        .and_then(|value| value.to_str().ok())
        .and_then(Expect::parse);
    let (id, expect) = match label {
        Some(label) => label,
        None => {
            ledger.wrong_identity(format!(
                "{}: a request without {REQUEST_HEADER}",
                uri.path()
            ));
            (0, Expect::Refused)
        }
    };
    let tokens = tokens_in(&uri, &headers);
    if !tokens.is_empty() {
        ledger.token_seen(format!("request {id}: {}", tokens.join(", ")));
    }
    let problems = identity_problems(&headers, expect, organization);
    if problems.is_empty() {
        match expect {
            Expect::User(_) => &ledger.as_user,
            _ => &ledger.anonymous,
        }
        .fetch_add(1, Ordering::Relaxed);
    } else {
        ledger.wrong_identity(format!(
            "request {id} ({expect}, {}): {}",
            uri.path(),
            problems.join("; ")
        ));
    }
    let seen = headers
        .get("x-auth-request-user")
        .and_then(|value| value.to_str().ok())
        .unwrap_or("-")
        .to_owned();
    if uri.path().starts_with("/events/") {
        ledger.streams.fetch_add(1, Ordering::Relaxed);
        return events(id, seen);
    }
    format!("{id} {seen}").into_response()
}

/// An event every 250 ms, each naming the request and the user the stream
/// was opened for.
fn events(id: u64, seen: String) -> Response {
    let ticks = IntervalStream::new(tokio::time::interval(Duration::from_millis(250)));
    let mut seq = 0u64;
    let stream = ticks.map(move |_| {
        seq += 1;
        Ok::<_, std::convert::Infallible>(Event::default().data(format!("{id} {seen} {seq}")))
    });
    Sse::new(stream).into_response()
}

/// Where the request carries a token: a token header under any spelling,
/// or anything shaped like a JWT in a header value, the path or the query.
/// Names only, never the value.
fn tokens_in(uri: &Uri, headers: &HeaderMap) -> Vec<String> {
    let mut found = Vec::new();
    for (name, value) in headers {
        let spelled = name.as_str().replace('_', "-");
        if TOKEN_HEADERS.contains(&spelled.as_str()) {
            found.push(format!("header {name}"));
        } else if holds_jwt(value.as_bytes()) {
            found.push(format!("a token in header {name}"));
        }
    }
    if holds_jwt(uri.to_string().as_bytes()) {
        found.push("a token in the URI".to_owned());
    }
    found
}

/// Whether `text` holds `xxx.yyy.zzz` whose first part starts with `eyJ`
/// (base64url of `{"`), as every JWS header does.
fn holds_jwt(text: &[u8]) -> bool {
    text.split(|b| !(b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.')))
        .any(|word| word.starts_with(b"eyJ") && word.iter().filter(|&&b| b == b'.').count() == 2)
}

/// Everything wrong with the identity headers for `expect`.
fn identity_problems(headers: &HeaderMap, expect: Expect, organization: &str) -> Vec<String> {
    let mut problems = Vec::new();
    for name in headers.keys() {
        let spelled = name.as_str().replace('_', "-");
        if name.as_str().contains('_') && IDENTITY_HEADERS.contains(&spelled.as_str()) {
            problems.push(format!("{name} reached the app"));
        }
    }
    match expect {
        Expect::Refused => problems.push("a request the gateway must refuse arrived".to_owned()),
        Expect::Anonymous => {
            for name in IDENTITY_HEADERS {
                if headers.contains_key(name) {
                    problems.push(format!("{name} on a public route"));
                }
            }
        }
        Expect::User(i) => {
            let user = &USERS[i];
            for name in IDENTITY_HEADERS {
                let values: Vec<_> = headers.get_all(name).iter().collect();
                let [value] = values[..] else {
                    problems.push(format!("{name} {} times", values.len()));
                    continue;
                };
                let value = String::from_utf8_lossy(value.as_bytes());
                if !identity_value_fits(name, &value, user, organization) {
                    problems.push(format!("{name} names someone else"));
                }
            }
        }
    }
    problems
}

/// Whether identity header `name` with `value` is `user`'s.
fn identity_value_fits(name: &str, value: &str, user: &User, organization: &str) -> bool {
    let decoded = || {
        percent_encoding::percent_decode_str(value)
            .decode_utf8()
            .map(|text| text.into_owned())
            .unwrap_or_default()
    };
    match name {
        "x-auth-request-user" => decoded() == user.sub,
        "x-auth-request-email" => decoded() == user.email,
        "x-auth-request-preferred-username" => decoded() == user.username,
        "x-auth-request-groups" => decoded() == user.team,
        "x-meingpt-org-id" => value == organization,
        "x-meingpt-role" => value == user.role,
        "x-meingpt-claims" => URL_SAFE_NO_PAD
            .decode(value)
            .ok()
            .and_then(|json| serde_json::from_slice::<serde_json::Value>(&json).ok())
            .is_some_and(|claims| claims["sub"] == user.sub && claims["aud"] == organization),
        _ => false,
    }
}

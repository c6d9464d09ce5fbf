//! What the soak runs: the gateway replicas (each fetching its keys through
//! a relay that counts its fetches), and nginx in front of them in both
//! modes.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use meingpt_auth::testing::MockIssuer;

use crate::common::{
    Gateway, Nginx, PATIENCE, Process, TempDir, deploy_file, forward_auth_routes, free_port,
    substitute,
};
use crate::measure::rss_kib;

/// A loopback address nobody listens on now (for programs that must
/// listen on the same address again after a restart).
pub fn free_addr() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], free_port()))
}

/// Stands between one replica and the issuer: forwards its JWKS requests
/// and counts them, so that fetches can be told apart by replica.
#[derive(Clone)]
pub struct JwksRelay {
    pub url: String,
    counts: Arc<RelayCounts>,
}

struct RelayCounts {
    issuer_jwks: String,
    http: reqwest::Client,
    started: Instant,
    /// Every fetch: when (ms since the start) and the issuer's status (0:
    /// no answer).
    fetches: Mutex<Vec<(u64, u16)>>,
    /// When a fetch last got the issuer's `200` (ms since the start; 0: never).
    last_served_ms: AtomicU64,
}

impl JwksRelay {
    pub async fn start(issuer: &MockIssuer, started: Instant) -> Self {
        let counts = Arc::new(RelayCounts {
            issuer_jwks: issuer.jwks_url(),
            http: reqwest::Client::builder()
                .no_proxy()
                .build()
                .expect("an HTTP client"),
            started,
            fetches: Mutex::default(),
            last_served_ms: AtomicU64::new(0),
        });
        async fn relay(State(counts): State<Arc<RelayCounts>>) -> Response {
            let at = counts.started.elapsed().as_millis().max(1) as u64;
            let answer = match counts.http.get(&counts.issuer_jwks).send().await {
                Ok(answer) => {
                    let status = answer.status();
                    let content_type = answer.headers().get(header::CONTENT_TYPE).cloned();
                    answer
                        .bytes()
                        .await
                        .ok()
                        .map(|body| (status, content_type, body))
                }
                Err(_) => None,
            };
            let status = answer.as_ref().map_or(0, |(status, _, _)| status.as_u16());
            counts.fetches.lock().unwrap().push((at, status));
            let Some((status, content_type, body)) = answer else {
                return StatusCode::BAD_GATEWAY.into_response();
            };
            if status == StatusCode::OK {
                counts.last_served_ms.fetch_max(at, Ordering::Release);
            }
            let mut response = (status, body).into_response();
            if let Some(content_type) = content_type {
                response
                    .headers_mut()
                    .insert(header::CONTENT_TYPE, content_type);
            }
            response
        }
        let app = Router::new().fallback(relay).with_state(counts.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind a JWKS relay");
        let addr = listener.local_addr().expect("local addr");
        tokio::spawn(async move { axum::serve(listener, app).await });
        Self {
            url: format!("http://{addr}/jwks"),
            counts,
        }
    }

    /// The replica's fetches: when (ms since the start) and the issuer's
    /// status (0: no answer).
    pub fn fetches(&self) -> Vec<(u64, u16)> {
        self.counts.fetches.lock().unwrap().clone()
    }

    /// Whether the issuer served this replica its keys after `at_ms`, at
    /// least `settle_ms` ago (so that requests in flight see them).
    pub fn served_keys_after(&self, at_ms: u64, now_ms: u64, settle_ms: u64) -> bool {
        let last = self.counts.last_served_ms.load(Ordering::Acquire);
        last > at_ms && now_ms >= last + settle_ms
    }
}

/// One gateway replica at a fixed address, which it keeps across
/// restarts, with its memory sampled over each life.
pub struct Replica {
    pub name: &'static str,
    pub addr: SocketAddr,
    metrics_addr: SocketAddr,
    config: std::path::PathBuf,
    dir: TempDir,
    process: Option<Process>,
    pub relay: JwksRelay,
    /// One entry per start.
    pub lives: Vec<Life>,
}

/// One run of a replica's process.
pub struct Life {
    pub pid: u32,
    pub started_ms: u64,
    pub ended_ms: Option<u64>,
    /// (ms since the start, RSS in KiB)
    pub rss: Vec<(u64, u64)>,
    /// Its `/metrics` counters, read just before it was killed or stopped.
    pub counters: BTreeMap<String, u64>,
}

impl Replica {
    /// A replica of `issuer`'s organization in front of `upstream`, with
    /// the rig's routes (`/admin` for admins, `/public` for anyone, the rest
    /// for any signed-in user); not started yet.
    pub async fn new(
        name: &'static str,
        issuer: &MockIssuer,
        upstream: SocketAddr,
        started: Instant,
    ) -> Self {
        let relay = JwksRelay::start(issuer, started).await;
        let dir = TempDir::new(&format!("soak-replica-{name}"));
        let addr = free_addr();
        let metrics_addr = free_addr();
        let config = dir.write(
            "gateway.toml",
            &format!(
                "listen = \"{addr}\"\nmetrics_listen = \"{metrics_addr}\"\n\n\
                 [auth]\norganizations = [\"{}\"]\nissuer = \"{}\"\njwks_url = \"{}\"\n\n{}",
                issuer.organization(),
                issuer.issuer(),
                relay.url,
                forward_auth_routes(upstream)
            ),
        );
        Self {
            name,
            addr,
            metrics_addr,
            config,
            dir,
            process: None,
            relay,
            lives: Vec::new(),
        }
    }

    /// Starts the replica and waits until it is ready (`/readyz`: its keys
    /// are loaded). Its log (the access log: a line per request) goes to a
    /// file of its own per life.
    pub async fn start(&mut self, now_ms: u64) {
        assert!(self.process.is_none(), "replica {} runs already", self.name);
        let log = self
            .dir
            .path()
            .join(format!("life-{}.log", self.lives.len() + 1));
        let mut process = Process::spawn_logging_to(
            &format!("replica {}", self.name),
            Gateway::command(&self.config),
            &log,
        );
        process.wait_for_port(self.addr, Some(&log));
        let ready = format!("http://{}/readyz", self.addr);
        let http = reqwest::Client::builder()
            .no_proxy()
            .build()
            .expect("an HTTP client");
        let deadline = Instant::now() + PATIENCE;
        loop {
            match http.get(&ready).send().await {
                Ok(response) if response.status() == StatusCode::OK => break,
                _ if Instant::now() < deadline => {
                    tokio::time::sleep(Duration::from_millis(50)).await
                }
                _ => panic!("replica {} not ready within {PATIENCE:?}", self.name),
            }
        }
        self.lives.push(Life {
            pid: process.id(),
            started_ms: now_ms,
            ended_ms: None,
            rss: Vec::new(),
            counters: BTreeMap::new(),
        });
        self.process = Some(process);
    }

    /// Kills the replica at once (`SIGKILL`, as a crash or an OOM kill
    /// would), after reading its counters.
    pub async fn kill(&mut self, now_ms: u64) {
        self.read_counters().await;
        if let Some(mut process) = self.process.take() {
            process.kill();
        }
        if let Some(life) = self.lives.last_mut() {
            life.ended_ms = Some(now_ms);
        }
    }

    /// Reads the running replica's `/metrics` counters into its life.
    pub async fn read_counters(&mut self) {
        if self.process.is_none() {
            return;
        }
        let url = format!("http://{}/metrics", self.metrics_addr);
        let Ok(response) = crate::common::client().get(url).send().await else {
            return;
        };
        let text = response.text().await.unwrap_or_default();
        if let Some(life) = self.lives.last_mut() {
            life.counters = counters_in(&text);
        }
    }

    /// Samples the RSS of the running replica.
    pub fn sample_rss(&mut self, now_ms: u64) {
        if self.process.is_none() {
            return;
        }
        if let Some(life) = self.lives.last_mut() {
            let kib = rss_kib(life.pid, "VmRSS:");
            if kib > 0 {
                life.rss.push((now_ms, kib));
            }
        }
    }

    /// Stops the replica (`SIGKILL`; the rig checks nothing is left).
    pub fn stop(&mut self, now_ms: u64) {
        self.process = None;
        if let Some(life) = self.lives.last_mut() {
            life.ended_ms.get_or_insert(now_ms);
        }
    }
}

/// The counters of a Prometheus text: `name{labels}` → value, for the
/// gateway's request and upstream-failure counters.
fn counters_in(text: &str) -> BTreeMap<String, u64> {
    text.lines()
        .filter(|line| {
            line.starts_with("meingpt_gateway_requests_total{")
                || line.starts_with("meingpt_gateway_upstream_failures_total{")
        })
        .filter_map(|line| {
            let (name, value) = line.rsplit_once(' ')?;
            Some((name.to_owned(), value.parse().ok()?))
        })
        .filter(|(_, value)| *value > 0)
        .collect()
}

/// nginx with two sites on two ports, both load-balancing over the two
/// replicas:
/// - proxy mode, the gateway's main path: nginx → a replica → the upstream;
/// - forward auth: `gateway/deploy/nginx.conf` itself (nginx asks a
///   replica with `auth_request`, then proxies to the upstream).
pub struct Sites {
    pub proxy: String,
    pub forward_auth: String,
    pub nginx: Nginx,
}

impl Sites {
    pub fn start(binary: &Path, replicas: [SocketAddr; 2], upstream: SocketAddr) -> Self {
        let proxy = free_addr();
        let forward_auth = free_addr();
        let [a, b] = replicas;
        let proxy_site = format!(
            "upstream meingpt_gateway_replicas {{
    server {a};
    server {b};
    keepalive 32;
}}

server {{
    listen {proxy};
    # Headers spelled with `_` reach the gateway, which must remove the
    # identity headers in that spelling too (nginx drops them by default).
    underscores_in_headers on;

    location / {{
        proxy_pass http://meingpt_gateway_replicas;
        proxy_http_version 1.1;
        proxy_set_header Connection \"\";
        proxy_set_header Host $host;
        proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
        # Streams (Server-Sent Events) pass as they come, never held in
        # nginx's buffers or temporary files for a slow client.
        proxy_buffering off;
    }}
}}
"
        );
        let forward_auth_site = substitute(
            &deploy_file("nginx.conf"),
            &[
                ("127.0.0.1:3000", &a.to_string()),
                ("127.0.0.1:3001", &b.to_string()),
                ("127.0.0.1:9000", &upstream.to_string()),
                ("127.0.0.1:8080", &forward_auth.to_string()),
            ],
        );
        let nginx = Nginx::start(
            binary,
            &format!("{proxy_site}\n{forward_auth_site}"),
            &[proxy, forward_auth],
        );
        Self {
            proxy: format!("http://{proxy}"),
            forward_auth: format!("http://{forward_auth}"),
            nginx,
        }
    }
}

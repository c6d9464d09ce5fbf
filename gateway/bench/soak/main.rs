//! Soak of `meingpt-gateway`: two replicas (the release build) behind real
//! nginx, an upstream that checks the identity headers of every request it
//! serves, and about two minutes of load from several users' tokens with
//! about 10 % attacks, while the issuer rotates its key twice and fails for
//! 30 s, the upstream restarts twice and a replica is killed and started
//! again, with Server-Sent Event streams held open throughout.
//!
//! ```text
//! bash gateway/bench/soak.sh                       # builds and runs it (~2 minutes)
//! cargo bench -p meingpt-gateway --bench soak      # the same
//! ```
//!
//! nginx serves two sites, both balancing over the two replicas: **proxy
//! mode** (nginx → a replica → the upstream), the gateway's main path, with
//! `proxy_buffering off` and `underscores_in_headers on` (so that spoofed
//! `X_Auth_Request_User` headers reach the gateway); and **forward auth**,
//! `gateway/deploy/nginx.conf` as shipped (nginx asks a replica with
//! `auth_request`, then proxies to the upstream itself). Both run, since one
//! nginx and the same replicas serve both; three requests in four go to
//! proxy mode, the only one in which the gateway itself removes spoofed
//! headers and carries the streams.
//!
//! Timeline (seconds since the start; the load starts once both replicas
//! and nginx are up, well within the first second):
//! - 12–14: the upstream is stopped (listener and connections closed) and
//!   started again; again at 52–54;
//! - 35: the issuer publishes key 1, and clients send tokens signed by it;
//! - 40–70: the issuer answers every JWKS request with `500`;
//! - 75: key 2, likewise;
//! - 84: replica a is killed (`SIGKILL`), started again at 88;
//! - 110: the run ends, once every replica has got key 2.
//!
//! Verdict rules, checked on every answer:
//! - a valid token gets `200`, and the upstream's answer names the request
//!   and the user sent; a token of a just-published key may get `401` until
//!   the issuer has served every replica a key set holding it (plus 1 s);
//! - an attack gets `400`, `401`, `403` or `431` and never reaches the
//!   upstream; spoofed identity headers beside a valid token or on a public
//!   route reach it as the token's identity or none;
//! - the upstream checks each request's identity headers (every one, once,
//!   in the canonical spelling only) against the user the client meant, and
//!   finds no token anywhere in it;
//! - a `5xx` or a missing answer is counted by the disruption it overlaps
//!   (plus 5 s); one that overlaps none fails the run, as does a stream
//!   that breaks outside a disruption or waits over 5 s for an event.
//!
//! The run fails (exit status 1) on any wrong identity at the upstream, any
//! token seen there, any wrong verdict or answer, any failure outside a
//! disruption, or a replica whose RSS grows by more than
//! [`RSS_GROWTH_BOUND_MIB`] after its first 20 s (judged for every life of
//! a replica that lasts 40 s or more; sampled every 2 s).

use std::pin::pin;
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use meingpt_auth::testing::{Fault, MockIssuer};

use load::{Front, Load, Tokens};
use stack::{Replica, Sites, free_addr};
use timeline::Timeline;
use upstream::Upstream;
use users::USERS;

#[allow(dead_code, reason = "the rig's components; the soak runs some of them")]
#[path = "../../tests/rig/common/mod.rs"]
mod common;

#[path = "../../../benches/soak/attacks.rs"]
mod attacks;
#[path = "../../../benches/soak/measure.rs"]
mod measure;

mod load;
mod report;
mod stack;
mod timeline;
mod upstream;
mod users;

/// Clients sending requests one after the other.
const CLIENTS: usize = 24;
/// Server-Sent Event streams held open: (front, user).
const STREAMS: [(Front, usize); 6] = [
    (Front::Proxy, 0),
    (Front::Proxy, 2),
    (Front::Proxy, 3),
    (Front::Proxy, 5),
    (Front::ForwardAuth, 1),
    (Front::ForwardAuth, 4),
];

/// How much a replica's RSS may grow after its first 20 s.
pub const RSS_GROWTH_BOUND_MIB: f64 = 4.0;
/// A replica's first seconds, in which its RSS may grow (pools, caches).
pub const WARM_UP_MS: u64 = 20_000;

const UPSTREAM_RESTART_1: &str = "upstream restart 1";
const UPSTREAM_RESTART_2: &str = "upstream restart 2";
const REPLICA_KILLED: &str = "replica a killed";
const JWKS_OUTAGE: &str = "JWKS outage";

/// What the timeline does, and when (ms since the start).
#[derive(Clone, Copy)]
enum Step {
    StopUpstream(&'static str),
    StartUpstream(&'static str),
    Publish(usize),
    FailIssuer,
    RecoverIssuer,
    KillReplica,
    RestartReplica,
}

const SCHEDULE: [(u64, Step); 10] = [
    (12_000, Step::StopUpstream(UPSTREAM_RESTART_1)),
    (14_000, Step::StartUpstream(UPSTREAM_RESTART_1)),
    (35_000, Step::Publish(1)),
    (40_000, Step::FailIssuer),
    (52_000, Step::StopUpstream(UPSTREAM_RESTART_2)),
    (54_000, Step::StartUpstream(UPSTREAM_RESTART_2)),
    (70_000, Step::RecoverIssuer),
    (75_000, Step::Publish(2)),
    (84_000, Step::KillReplica),
    (88_000, Step::RestartReplica),
];
/// The run ends here once every replica has key 2, or at the latest at
/// [`LAST_END_MS`].
const END_MS: u64 = 110_000;
const LAST_END_MS: u64 = 160_000;

fn main() -> ExitCode {
    // `cargo bench` passes `--bench`; `cargo test --all-targets` runs the
    // binary without it.
    if !std::env::args().any(|arg| arg == "--bench") {
        eprintln!("the soak runs only under `cargo bench -p meingpt-gateway --bench soak`");
        return ExitCode::SUCCESS;
    }
    if cfg!(debug_assertions) {
        eprintln!(
            "the soak measures the release build: run it with `cargo bench -p meingpt-gateway --bench soak`"
        );
        return ExitCode::FAILURE;
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("a runtime");
    if runtime.block_on(soak()) {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}

async fn soak() -> bool {
    let nginx = common::find_program("nginx").expect("the soak needs nginx: apt-get install nginx");
    let binary = env!("CARGO_BIN_EXE_meingpt-gateway");
    let issuer = MockIssuer::start().await;
    let other_issuer = MockIssuer::start().await;
    eprintln!("minting tokens …");
    let (tokens, kids) = Tokens::mint(&issuer, &other_issuer);
    let attack_names = tokens.attack_names();

    let timeline = Arc::new(Timeline::new());
    let mut upstream = Upstream::new(free_addr(), issuer.organization());
    upstream.start();
    let mut replicas = Vec::new();
    for name in ["a", "b"] {
        let mut replica = Replica::new(name, &issuer, upstream.addr, timeline.started()).await;
        replica.start(timeline.now_ms()).await;
        replicas.push(replica);
    }
    let sites = Sites::start(&nginx, [replicas[0].addr, replicas[1].addr], upstream.addr);
    let load = Arc::new(Load::new(
        timeline.clone(),
        tokens,
        sites.proxy.clone(),
        sites.forward_auth.clone(),
        replicas
            .iter()
            .map(|replica| replica.relay.clone())
            .collect(),
    ));

    let http = common::client();
    let streaming = reqwest::Client::builder()
        .no_proxy()
        .connect_timeout(Duration::from_secs(5))
        .build()
        .expect("an HTTP client");
    let mut load_averages = vec![(timeline.now_ms(), report::load_average())];
    timeline.note("load starts");
    let mut clients = tokio::task::JoinSet::new();
    for client in 0..CLIENTS {
        clients.spawn(load::client(
            load.clone(),
            http.clone(),
            client as u64 * 7919,
        ));
    }
    for (front, user) in STREAMS {
        clients.spawn(load::stream(load.clone(), streaming.clone(), front, user));
    }

    let mut steps = SCHEDULE.iter().peekable();
    let mut interrupt = pin!(tokio::signal::ctrl_c());
    let mut interrupted = false;
    let mut noted_keys = [[false; 2]; 3];
    let mut last_progress = 0;
    loop {
        tokio::select! {
            _ = tokio::time::sleep(Duration::from_millis(250)) => {}
            _ = &mut interrupt => {
                interrupted = true;
                timeline.note("interrupted");
                break;
            }
        }
        let now = timeline.now_ms();
        while let Some((_, step)) = steps.next_if(|(at, _)| *at <= now) {
            match *step {
                Step::StopUpstream(cause) => {
                    timeline.begin(cause, "upstream stopped");
                    tokio::task::block_in_place(|| upstream.stop());
                }
                Step::StartUpstream(cause) => {
                    tokio::task::block_in_place(|| upstream.start());
                    timeline.end(cause, "upstream started again");
                }
                Step::Publish(generation) => {
                    issuer.publish(&kids[generation - 1]);
                    load.published(generation);
                    timeline.note(format!(
                        "issuer publishes key {generation}; clients send tokens signed by it"
                    ));
                }
                Step::FailIssuer => {
                    issuer.fail(Fault::Status(500));
                    timeline.begin(JWKS_OUTAGE, "issuer answers JWKS requests with 500");
                }
                Step::RecoverIssuer => {
                    issuer.recover();
                    timeline.end(JWKS_OUTAGE, "issuer serves its keys again");
                }
                Step::KillReplica => {
                    timeline.begin(REPLICA_KILLED, "replica a killed (SIGKILL)");
                    replicas[0].kill(timeline.now_ms()).await;
                }
                Step::RestartReplica => {
                    replicas[0].start(timeline.now_ms()).await;
                    timeline.end(REPLICA_KILLED, "replica a started again and ready");
                }
            }
        }
        for (generation, noted) in noted_keys.iter_mut().enumerate().skip(1) {
            let published = load.published_at(generation);
            for (replica, noted) in replicas.iter().zip(noted) {
                if published > 0 && !*noted && replica.relay.served_keys_after(published, now, 0) {
                    *noted = true;
                    timeline.note(format!(
                        "the issuer served replica {} a key set with key {generation}",
                        replica.name
                    ));
                }
            }
        }
        if now / 2_000 != (now - 250) / 2_000 {
            for replica in &mut replicas {
                replica.sample_rss(now);
            }
        }
        if now >= last_progress + 10_000 {
            last_progress = now - now % 10_000;
            load_averages.push((now, report::load_average()));
            eprintln!("{}", report::progress(&load, &upstream.ledger, now));
        }
        let past_schedule = steps.peek().is_none();
        if past_schedule && ((now >= END_MS && load.every_replica_has(2)) || now >= LAST_END_MS) {
            break;
        }
    }

    load.done.store(true, Ordering::Relaxed);
    timeline.note("load stops");
    let _ = tokio::time::timeout(Duration::from_secs(30), async {
        while clients.join_next().await.is_some() {}
    })
    .await;
    clients.abort_all();
    let elapsed_ms = timeline.now_ms();
    load_averages.push((elapsed_ms, report::load_average()));
    for replica in &mut replicas {
        replica.sample_rss(elapsed_ms);
        replica.read_counters().await;
        replica.stop(elapsed_ms);
    }
    let nginx_errors = sites.nginx.error_log();
    drop(sites);
    upstream.stop();

    report::print(&report::Run {
        binary,
        users: USERS.len(),
        clients: CLIENTS,
        streams: STREAMS.len(),
        attack_names: &attack_names,
        timeline: &timeline,
        load: &load,
        ledger: &upstream.ledger,
        replicas: &replicas,
        issuer_fetches: issuer.fetch_count(),
        load_averages: &load_averages,
        elapsed_ms,
        nginx_errors: &nginx_errors,
        interrupted,
    })
}

//! Soak: at least 1,000,000 requests over loopback at full speed against the
//! release quickstart, 90 % valid tokens (repeated and distinct), 10 % attacks
//! from the catalogue, while the issuer rotates its key twice and fails for
//! 30 s. Checks every verdict and reports wrong verdicts, 5xx answers, JWKS
//! fetches and the server's memory over time.
//!
//! ```text
//! cargo build --release --example quickstart && cargo bench --bench soak
//! SOAK_REQUESTS=200000 cargo bench --bench soak   # a shorter run
//! ```
//!
//! Timeline (wall clock): first rotation at 35 s (past the server's 30 s
//! unknown-`kid` cooldown after its first fetch), issuer failing (HTTP 500)
//! from 40 s to 70 s, second rotation at 75 s; the run ends when both the
//! request count is reached, the timeline (80 s) is over and the server has
//! learned the second rotated key.
//!
//! Verdict rules: a valid token must get 200 — except that a token signed by
//! a just-rotated key may get 401 "unknown key" until the issuer has served
//! the server a key set that contains it (plus one second for requests in
//! flight). The server refetches for an unknown `kid` at most once per 30 s
//! cooldown, and the attacks' random `kid`s use up that allowance too, so
//! learning a new key can take up to a cooldown — or longer while the issuer
//! is down. An attack must get 400, 401 or 431, never 200. No request may get
//! a 5xx: keys are cached before the outage, so stale-if-error keeps serving.

use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use meingpt_auth::testing::{Fault, MockIssuer};

use attacks::{Attack, attacks};
use measure::{Occurrences, rss_kib};

mod attacks;
mod measure;

const CONCURRENCY: usize = 48;
const DISTINCT_PER_KEY: usize = 6_000;

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Expect {
    /// A valid token; `usize` is the key generation (0, 1, 2) that signed it.
    Valid(usize),
    Attack,
}

struct Pools {
    /// Per key generation: one repeated token and many distinct ones.
    repeated: Vec<String>,
    distinct: Vec<Vec<String>>,
    attacks: Vec<Attack>,
}

fn mint_generation(issuer: &MockIssuer, generation: usize) -> (String, Vec<String>) {
    let repeated = issuer.token().sub(&format!("repeat-{generation}")).sign();
    let distinct = (0..DISTINCT_PER_KEY)
        .map(|n| issuer.token().sub(&format!("user-{generation}-{n}")).sign())
        .collect();
    (repeated, distinct)
}

struct Server(Child);

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn main() {
    let target: u64 = std::env::var("SOAK_REQUESTS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1_000_000);
    let binary = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/target/release/examples/quickstart"
    );
    assert!(
        std::path::Path::new(binary).exists(),
        "build the server first: cargo build --release --example quickstart"
    );
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(soak(binary, target));
}

async fn soak(binary: &str, target: u64) {
    let issuer = Arc::new(MockIssuer::start().await);
    eprintln!("minting {DISTINCT_PER_KEY} distinct tokens for each of 3 keys …");
    let (r0, d0) = mint_generation(&issuer, 0);
    let mut pools = Pools {
        repeated: vec![r0],
        distinct: vec![d0],
        attacks: attacks(&issuer),
    };
    let names: Vec<_> = pools.attacks.iter().map(|attack| attack.name).collect();
    eprintln!("attacks in the mix: {}", names.join(", "));
    // Keys 2 and 3 exist from the start but are published only at rotation.
    let kid_2 = issuer.rotate();
    let (r1, d1) = mint_generation(&issuer, 1);
    let kid_3 = issuer.rotate();
    let (r2, d2) = mint_generation(&issuer, 2);
    issuer.unpublish(&kid_2);
    issuer.unpublish(&kid_3);
    pools.repeated.extend([r1, r2]);
    pools.distinct.extend([d1, d2]);
    let pools = Arc::new(pools);

    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let server = Server(
        Command::new(binary)
            .env_clear()
            .env("MEINGPT_ORG_ID", issuer.organization())
            .env("MEINGPT_ISSUER", issuer.issuer())
            .env("LISTEN_ADDR", format!("127.0.0.1:{port}"))
            .env("RUST_LOG", "error")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start the quickstart"),
    );
    let pid = server.0.id();
    let base = format!("http://127.0.0.1:{port}/me");
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(CONCURRENCY)
        .build()
        .unwrap();
    for _ in 0..100 {
        if client.get(&base).send().await.is_ok() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    let started = Instant::now();
    let published = Arc::new(AtomicUsize::new(1)); // key generations published
    // When the issuer first served a key set with key generation g to the
    // server (ms since start; 0: not yet).
    let learned_at: Arc<[AtomicU64; 3]> = Arc::new(Default::default());
    let sent = Arc::new(AtomicU64::new(0));
    let wrong = Arc::new(AtomicU64::new(0));
    let server_errors = Arc::new(AtomicU64::new(0));
    // Per key generation: refusals of its valid tokens before the server
    // learned it, and the first and last of them (ms since start).
    let tolerated: Arc<[Occurrences; 3]> = Arc::new(Default::default());
    let done = Arc::new(std::sync::atomic::AtomicBool::new(false));

    let mut workers = tokio::task::JoinSet::new();
    for worker in 0..CONCURRENCY {
        let (client, base, pools) = (client.clone(), base.clone(), pools.clone());
        let (published, learned_at, sent) = (published.clone(), learned_at.clone(), sent.clone());
        let (wrong, server_errors, tolerated, done) = (
            wrong.clone(),
            server_errors.clone(),
            tolerated.clone(),
            done.clone(),
        );
        workers.spawn(async move {
            let mut n = worker as u64 * 7919;
            while !done.load(Ordering::Relaxed) {
                n = n.wrapping_add(1);
                let generation = published.load(Ordering::Acquire) - 1;
                let (token, expect) = match n % 10 {
                    0 => (
                        &pools.attacks[(n / 10) as usize % pools.attacks.len()].token,
                        Expect::Attack,
                    ),
                    1..=4 => (&pools.repeated[generation], Expect::Valid(generation)),
                    _ => {
                        let distinct = &pools.distinct[generation];
                        (
                            &distinct[(n as usize * 31) % distinct.len()],
                            Expect::Valid(generation),
                        )
                    }
                };
                let status = match client
                    .get(&base)
                    .header("x-meingpt-jwt", token)
                    .send()
                    .await
                {
                    Ok(response) => response.status().as_u16(),
                    Err(_) => 0,
                };
                sent.fetch_add(1, Ordering::Relaxed);
                // Learned: a successful fetch after the rotation, one second ago.
                let learned = |g: usize| {
                    let at = learned_at[g].load(Ordering::Acquire);
                    at != 0 && started.elapsed().as_millis() as u64 >= at + 1_000
                };
                match (expect, status) {
                    (_, 500..=599) => {
                        server_errors.fetch_add(1, Ordering::Relaxed);
                    }
                    (Expect::Valid(_), 200) | (Expect::Attack, 400 | 401 | 431) => {}
                    (Expect::Valid(g), 401) if g > 0 && !learned(g) => {
                        tolerated[g].record(started.elapsed().as_millis() as u64);
                    }
                    _ => {
                        if wrong.fetch_add(1, Ordering::Relaxed) < 5 {
                            eprintln!("wrong verdict: {expect:?} got {status}");
                        }
                    }
                }
            }
        });
    }

    let mut published_at = [0.0f64; 3];
    let mut samples = Vec::new();
    let (mut rotated_1, mut failing, mut recovered, mut rotated_2) = (false, false, false, false);
    let mut fetches_at_rotation = 0;
    loop {
        tokio::time::sleep(Duration::from_millis(250)).await;
        let t = started.elapsed();
        if !rotated_1 && t >= Duration::from_secs(35) {
            issuer.publish(&kid_2);
            fetches_at_rotation = issuer.fetch_count();
            published.store(2, Ordering::Release);
            published_at[1] = t.as_secs_f64();
            rotated_1 = true;
        }
        if !failing && t >= Duration::from_secs(40) {
            issuer.fail(Fault::Status(500));
            failing = true;
        }
        if !recovered && t >= Duration::from_secs(70) {
            issuer.recover();
            // Fetches that failed during the outage taught the server nothing.
            fetches_at_rotation = issuer.fetch_count();
            recovered = true;
        }
        if !rotated_2 && t >= Duration::from_secs(75) {
            issuer.publish(&kid_3);
            fetches_at_rotation = issuer.fetch_count();
            published.store(3, Ordering::Release);
            published_at[2] = t.as_secs_f64();
            rotated_2 = true;
        }
        // A fetch served while the issuer is healthy carries the newest key.
        let newest = published.load(Ordering::Acquire) - 1;
        let issuer_up = recovered || !failing;
        if newest > 0
            && issuer_up
            && learned_at[newest].load(Ordering::Acquire) == 0
            && issuer.fetch_count() > fetches_at_rotation
        {
            learned_at[newest].store(t.as_millis().max(1) as u64, Ordering::Release);
            eprintln!(
                "key generation {newest} learned at {:.1} s",
                t.as_secs_f64()
            );
        }
        if samples.len() % 4 == 0 {
            samples.push((
                t.as_secs(),
                sent.load(Ordering::Relaxed),
                rss_kib(pid, "VmRSS:"),
            ));
        } else {
            samples.push((0, 0, 0));
        }
        if rotated_2
            && learned_at[2].load(Ordering::Acquire) != 0
            && t >= Duration::from_secs(80)
            && sent.load(Ordering::Relaxed) >= target
        {
            break;
        }
    }
    done.store(true, Ordering::Relaxed);
    while workers.join_next().await.is_some() {}
    let elapsed = started.elapsed();
    let peak = rss_kib(pid, "VmHWM:");
    drop(server);

    let total = sent.load(Ordering::Relaxed);
    println!(
        "requests: {total} in {:.1} s ({:.0} req/s)",
        elapsed.as_secs_f64(),
        total as f64 / elapsed.as_secs_f64()
    );
    println!("wrong verdicts: {}", wrong.load(Ordering::Relaxed));
    println!("5xx answers: {}", server_errors.load(Ordering::Relaxed));
    let refused: u64 = tolerated.iter().map(Occurrences::count).sum();
    println!(
        "valid tokens of a just-published key refused until the server learned it (allowed): {refused}"
    );
    for g in 1..3 {
        let learned = match learned_at[g].load(Ordering::Acquire) {
            0 => "never (the next key was published first)".to_owned(),
            ms => format!("at {:.1} s", ms as f64 / 1000.0),
        };
        println!(
            "  key generation {g}: published at {:.1} s, first served to the server {learned}; refused: {}",
            published_at[g], tolerated[g]
        );
    }
    println!("JWKS fetches seen by the issuer: {}", issuer.fetch_count());
    println!("server RSS (MiB) over time [s: requests sent → RSS]:");
    for (t, n, rss) in samples.iter().filter(|s| s.2 > 0) {
        println!("  {t:>3} s: {n:>9} → {:.1}", *rss as f64 / 1024.0);
    }
    println!("server peak RSS: {:.1} MiB", peak as f64 / 1024.0);
    assert_eq!(wrong.load(Ordering::Relaxed), 0, "wrong verdicts");
    assert_eq!(server_errors.load(Ordering::Relaxed), 0, "5xx answers");
}

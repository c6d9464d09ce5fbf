//! Memory of a server verifying many distinct tokens: the resident set size
//! (RSS, from `/proc/self/status`) of this process, which serves the
//! quickstart-like `/me` route behind the layer on 127.0.0.1 and sends it
//! the tokens over HTTP. Run through `benches/memory.sh`.
//!
//! - `big`: 12,000 distinct tokens of about 15.8 KB (a `teams` array of 510
//!   entries), meinGPT's largest.
//! - `small`: 200,000 distinct small tokens (no teams).
//!
//! Tokens are HS256 (a static key) so that minting 200,000 of them takes
//! seconds, not minutes; the verified-token cache does not care how a token
//! was signed. Each is minted just before it is sent, so the client holds
//! almost nothing. The authenticator runs with its defaults (verified-token
//! cache: 10,000 entries, 64 MiB).

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use axum::Router;
use axum::routing::get;
use jsonwebtoken::{EncodingKey, Header};
use meingpt_auth::testing::verified_token_count;
use meingpt_auth::{Algorithm, MeinGptAuth, MeinGptUser, StaticKey};
use serde_json::{Value, json};

const ISSUER: &str = "https://issuer.example";
const SECRET: &[u8] = b"a shared secret of at least thirty-two bytes";

fn rss_kib(field: &str) -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|line| line.strip_prefix(field))
        .and_then(|rest| rest.trim().trim_end_matches(" kB").trim().parse().ok())
        .unwrap_or(0)
}

fn mint(n: usize, teams: usize) -> String {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let teams: Vec<Value> = (0..teams)
        .map(|team| json!({"id": format!("{team:03}"), "name": ""}))
        .collect();
    let claims = json!({
        "iss": ISSUER, "aud": "api", "sub": format!("user-{n}"),
        "exp": now + 3600, "iat": now, "jti": format!("{n:036}"),
        "email": "ada@example.com", "username": "Ada Lovelace",
        "organizationName": "Example GmbH", "role": "member", "teams": teams,
    });
    jsonwebtoken::encode(
        &Header::new(Algorithm::HS256),
        &claims,
        &EncodingKey::from_secret(SECRET),
    )
    .unwrap()
}

fn main() {
    let which = std::env::args()
        .skip(1)
        .find(|arg| !arg.starts_with("--"))
        .unwrap_or_else(|| "big".to_owned());
    let (count, teams) = match which.as_str() {
        "big" => (12_000, 510),
        "small" => (200_000, 0),
        other => panic!("unknown run {other:?}: big or small"),
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async move {
        let auth = MeinGptAuth::static_key(ISSUER, StaticKey::secret(Algorithm::HS256, SECRET))
            .audience("api")
            .build()
            .unwrap();
        let app = Router::new()
            .route(
                "/me",
                get(|user: MeinGptUser| async move { user.sub().to_owned() }),
            )
            .layer(auth.layer());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/me", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });

        let token_size = mint(0, teams).len();
        let before = rss_kib("VmRSS:");
        let started = Instant::now();
        let next = Arc::new(AtomicUsize::new(0));
        let client = reqwest::Client::new();
        let mut halfway = 0;
        for until in [count / 2, count] {
            let workers: Vec<_> = (0..8)
                .map(|_| {
                    let (next, client, url) = (next.clone(), client.clone(), url.clone());
                    tokio::spawn(async move {
                        loop {
                            let n = next.fetch_add(1, Ordering::Relaxed);
                            if n >= until {
                                next.fetch_min(until, Ordering::Relaxed);
                                break;
                            }
                            let response = client
                                .get(&url)
                                .header("x-meingpt-jwt", mint(n, teams))
                                .send()
                                .await
                                .unwrap();
                            assert_eq!(response.status(), 200);
                            let _ = response.bytes().await.unwrap();
                        }
                    })
                })
                .collect();
            for worker in workers {
                worker.await.unwrap();
            }
            if until < count {
                halfway = rss_kib("VmRSS:");
            }
        }
        println!(
            "{which}: {count} distinct tokens of {token_size} bytes in {:.1} s; \
             RSS before {} MiB, after {} {} MiB, after {count} {} MiB (peak {} MiB); \
             {} tokens remembered",
            started.elapsed().as_secs_f64(),
            before / 1024,
            count / 2,
            halfway / 1024,
            rss_kib("VmRSS:") / 1024,
            rss_kib("VmHWM:") / 1024,
            verified_token_count(&auth),
        );
    });
}

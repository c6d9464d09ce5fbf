//! What the access log and `/metrics` say about a request: the verdict its
//! answer carries (the crate's refusal, or the gateway's own for what the
//! crate does not decide), in proxy mode and in forward auth alike.

use std::collections::BTreeMap;
use std::path::Path;

use meingpt_auth::testing::{Fault, MockIssuer};
use meingpt_gateway::admission::Refusal;

use crate::common::binary::Running;
use crate::common::{Upstream, auth_toml, client, get, get_raw, temp_dir};

/// The value of `name=` in an access-log line, unquoted.
fn field<'l>(line: &'l str, name: &str) -> &'l str {
    let start = line
        .find(&format!(" {name}="))
        .unwrap_or_else(|| panic!("no {name} in {line}"))
        + name.len()
        + 2;
    let rest = &line[start..];
    match rest.strip_prefix('"') {
        Some(quoted) => &quoted[..quoted.find('"').expect("a closing quote")],
        None => rest.split(' ').next().unwrap_or(""),
    }
}

/// The gateway binary and what its access log said, request by request.
struct Ledger {
    running: Running,
    /// `http://…/metrics`.
    metrics_url: String,
    /// Requests seen in the access log, by mode and verdict.
    counted: BTreeMap<(String, String), u64>,
}

impl Ledger {
    /// Starts the binary with the configuration file `config`; returns the
    /// ledger and the gateway's URL.
    fn start(config: &Path) -> (Self, String) {
        let (mut running, base) = Running::start(
            &["--config", config.to_str().unwrap()],
            &[("LISTEN_ADDR", "127.0.0.1:0")],
        );
        let metrics_url = running
            .wait_for_stderr_line(|line| line.starts_with("meingpt-gateway metrics on "))
            .trim_start_matches("meingpt-gateway metrics on ")
            .to_owned();
        let ledger = Self {
            running,
            metrics_url,
            counted: BTreeMap::new(),
        };
        (ledger, base)
    }

    /// Checks that the request just answered with `answered` got `status`,
    /// and that its access-log line names `status`, `mode`, `verdict` and
    /// `reason`.
    fn logged(&mut self, answered: u16, status: u16, mode: &str, verdict: &str, reason: &str) {
        assert_eq!(answered, status, "{mode} {verdict} {reason}");
        let line = self
            .running
            .wait_for_stderr_line(|line| line.contains("meingpt_gateway::access"));
        let logged = (
            field(&line, "status").to_owned(),
            field(&line, "mode"),
            field(&line, "verdict"),
            field(&line, "reason"),
        );
        assert_eq!(
            logged,
            (status.to_string(), mode, verdict, reason),
            "{line}"
        );
        *self
            .counted
            .entry((mode.to_owned(), verdict.to_owned()))
            .or_default() += 1;
    }

    /// Checks that `/metrics` counts every request as its access-log line
    /// did, and nothing else.
    async fn agrees_with_metrics(&self) {
        let metrics = get(&self.metrics_url, &[]).await;
        let counted = requests_total(&metrics.body);
        assert!(!counted.is_empty(), "{}", metrics.body);
        for (key, count) in &counted {
            assert_eq!(
                *count,
                self.counted.get(key).copied().unwrap_or(0),
                "{key:?} in\n{}",
                metrics.body
            );
        }
        for key in self.counted.keys() {
            assert!(counted.contains_key(key), "no {key:?} in\n{}", metrics.body);
        }
    }
}

/// `meingpt_gateway_requests_total` by mode and verdict.
fn requests_total(metrics: &str) -> BTreeMap<(String, String), u64> {
    metrics
        .lines()
        .filter_map(|line| line.strip_prefix("meingpt_gateway_requests_total{mode=\""))
        .map(|rest| {
            let (mode, rest) = rest.split_once("\",verdict=\"").expect("a verdict label");
            let (verdict, count) = rest.split_once("\"} ").expect("a count");
            (
                (mode.to_owned(), verdict.to_owned()),
                count.parse().expect("a number"),
            )
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn access_log_and_metrics_name_the_verdict_each_answer_carries() {
    let issuer = MockIssuer::start().await;
    let upstream = Upstream::start().await;
    // A port that was just free: nothing listens there.
    let closed = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let config = temp_dir("outcomes").join("gateway.toml");
    std::fs::write(
        &config,
        format!(
            "metrics_listen = \"127.0.0.1:0\"\nmax_body_bytes = 10\nresponse_timeout_secs = 2\n\
             {}\
             [[route]]\nprefix = \"/admin\"\nupstream = \"{up}\"\nroles = [\"admin\"]\n\
             [[route]]\nprefix = \"/down\"\nupstream = \"http://{closed}\"\n\
             [[route]]\nprefix = \"/\"\nupstream = \"{up}\"\n",
            auth_toml(&issuer),
            up = upstream.url(),
        ),
    )
    .unwrap();
    let (mut ledger, base) = Ledger::start(&config);
    let member = issuer.demo_member().sign();
    let expired = issuer.token().expires_at(1_000_000).sign();
    let jwt = |token: &str| ("x-meingpt-jwt", token.to_owned());
    let url = |path: &str| format!("{base}{path}");

    // Proxy mode: the crate's refusals...
    let answer = get(&url("/x"), &[]).await;
    ledger.logged(answer.status, 401, "proxy", "unauthenticated", "-");
    let (name, value) = jwt(&expired);
    let answer = get(&url("/x"), &[(name, &value)]).await;
    ledger.logged(answer.status, 401, "proxy", "unauthenticated", "expired");
    let (name, value) = jwt(&member);
    let answer = get(&url("/admin/x"), &[(name, &value)]).await;
    ledger.logged(answer.status, 403, "proxy", "forbidden", "-");
    let answer = get(&url("/x"), &[("x-meingpt-jwt", "")]).await;
    ledger.logged(
        answer.status,
        400,
        "proxy",
        "invalid_request",
        "the bearer token is empty",
    );
    // ...the gateway's own: a path it cannot decide on, a body over the
    // limit, an upstream that is down, one that does not answer in time...
    let status = get_raw(&url("/x/%2e%2e/admin"), &[(name, &value)]).await;
    ledger.logged(
        status,
        400,
        "proxy",
        "bad_request",
        Refusal::DotSegment.description(),
    );
    let answer = client()
        .post(url("/upload"))
        .header(name, &value)
        .body(vec![b'x'; 100])
        .send()
        .await
        .unwrap();
    // Answered before the body was read: the connection closes, and says so.
    assert_eq!(answer.headers()["connection"], "close");
    ledger.logged(
        answer.status().as_u16(),
        413,
        "proxy",
        "body_too_large",
        "-",
    );
    let answer = get(&url("/down/x"), &[(name, &value)]).await;
    ledger.logged(answer.status, 502, "proxy", "upstream_failed", "connect");
    let answer = get(&url("/slow/20000"), &[(name, &value)]).await;
    ledger.logged(answer.status, 504, "proxy", "upstream_timeout", "timeout");
    // ...and a request that passes.
    let answer = get(&url("/x"), &[(name, &value)]).await;
    ledger.logged(answer.status, 200, "proxy", "allowed", "-");

    // Forward auth: the same refusals of the crate, and the original
    // request the gateway cannot decide on.
    let ask = |headers: Vec<(&'static str, String)>| {
        let auth = url("/_meingpt/auth");
        async move {
            let borrowed: Vec<(&str, &str)> = headers
                .iter()
                .map(|(name, value)| (*name, value.as_str()))
                .collect();
            get(&auth, &borrowed).await.status
        }
    };
    let original = |path: &str| ("x-original-uri", path.to_owned());
    let status = ask(vec![original("/x")]).await;
    ledger.logged(status, 401, "forward_auth", "unauthenticated", "-");
    let status = ask(vec![original("/x"), jwt(&expired)]).await;
    ledger.logged(status, 401, "forward_auth", "unauthenticated", "expired");
    let status = ask(vec![original("/admin/x"), jwt(&member)]).await;
    ledger.logged(status, 403, "forward_auth", "forbidden", "-");
    let status = ask(vec![original("/x"), jwt("")]).await;
    ledger.logged(
        status,
        400,
        "forward_auth",
        "invalid_request",
        "the bearer token is empty",
    );
    let status = ask(vec![jwt(&member)]).await;
    ledger.logged(
        status,
        400,
        "forward_auth",
        "bad_request",
        Refusal::MissingOriginalUri.description(),
    );
    let status = ask(vec![original("/x/%2e%2e/admin"), jwt(&member)]).await;
    ledger.logged(
        status,
        400,
        "forward_auth",
        "bad_request",
        Refusal::DotSegment.description(),
    );
    let status = ask(vec![original("/x"), jwt(&member)]).await;
    ledger.logged(status, 200, "forward_auth", "allowed", "-");

    ledger.agrees_with_metrics().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keys_the_issuer_cannot_give_are_logged_and_counted_as_unavailable() {
    let issuer = MockIssuer::start().await;
    issuer.fail(Fault::Status(500));
    let upstream = Upstream::start().await;
    let config = temp_dir("outcomes-keys").join("gateway.toml");
    std::fs::write(
        &config,
        format!(
            "metrics_listen = \"127.0.0.1:0\"\n{}[[route]]\nprefix = \"/\"\nupstream = \"{}\"\n",
            auth_toml(&issuer),
            upstream.url(),
        ),
    )
    .unwrap();
    let (mut ledger, base) = Ledger::start(&config);
    let token = issuer.demo_member().sign();

    let answer = get(&format!("{base}/x"), &[("x-meingpt-jwt", &token)]).await;
    ledger.logged(answer.status, 503, "proxy", "unavailable", "-");
    let answer = get(
        &format!("{base}/_meingpt/auth"),
        &[("x-meingpt-jwt", &token), ("x-original-uri", "/x")],
    )
    .await;
    ledger.logged(answer.status, 503, "forward_auth", "unavailable", "-");

    ledger.agrees_with_metrics().await;
    assert_eq!(upstream.count(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn embed_mode_answers_are_logged_and_counted_with_their_own_verdicts() {
    let issuer = MockIssuer::start().await;
    let upstream = Upstream::start().await;
    let config = temp_dir("outcomes-embed").join("gateway.toml");
    std::fs::write(
        &config,
        format!(
            "metrics_listen = \"127.0.0.1:0\"\n{}\n[embed]\nmeingpt_origins = [\"https://meingpt.example\"]\n\n\
             [[route]]\nprefix = \"/\"\nupstream = \"{}\"\nembed = true\n",
            auth_toml(&issuer),
            upstream.url(),
        ),
    )
    .unwrap();
    let (mut ledger, base) = Ledger::start(&config);
    let url = |path: &str| format!("{base}{path}");

    // The first-load page stands for the crate's refusal of a page.
    let page = client()
        .get(url("/page"))
        .header("sec-fetch-site", "cross-site")
        .header("sec-fetch-mode", "navigate")
        .header("sec-fetch-dest", "iframe")
        .send()
        .await
        .unwrap();
    ledger.logged(page.status().as_u16(), 401, "proxy", "unauthenticated", "-");
    // The session endpoint signs the user in through the route's decision.
    let signed_in = client()
        .post(url("/_meingpt/session"))
        .header("sec-fetch-site", "same-origin")
        .header("content-type", "application/json")
        .body(format!(
            "{{\"token\": \"{}\"}}",
            issuer.demo_member().sign()
        ))
        .send()
        .await
        .unwrap();
    let status = signed_in.status().as_u16();
    let cookie = signed_in.headers()["set-cookie"]
        .to_str()
        .unwrap()
        .split(';')
        .next()
        .unwrap()
        .to_owned();
    ledger.logged(status, 200, "proxy", "allowed", "-");
    // The session, used from another site: refused before any decision.
    let cross_site = client()
        .get(url("/api/notes"))
        .header("sec-fetch-site", "cross-site")
        .header("sec-fetch-mode", "cors")
        .header("cookie", &cookie)
        .send()
        .await
        .unwrap();
    ledger.logged(
        cross_site.status().as_u16(),
        403,
        "proxy",
        "cross_site",
        "-",
    );
    let script = client()
        .get(url("/_meingpt/embed.js"))
        .send()
        .await
        .unwrap();
    ledger.logged(script.status().as_u16(), 200, "proxy", "endpoint", "-");
    let own = client()
        .get(url("/api/notes"))
        .header("sec-fetch-site", "same-origin")
        .header("cookie", &cookie)
        .send()
        .await
        .unwrap();
    ledger.logged(own.status().as_u16(), 200, "proxy", "allowed", "-");

    ledger.agrees_with_metrics().await;
    assert_eq!(upstream.count(), 1);
}

//! Operation: the development issuer, environment-only mode, graceful
//! shutdown, `/healthz` and `/readyz`, metrics, the access log.

use meingpt_auth::testing::{Fault, MockIssuer};

use crate::common::binary::Running;
use crate::common::{Gateway, PATIENCE, Upstream, auth_toml, get, payload_of, temp_dir};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nothing_configured_starts_the_development_issuer_with_working_tokens() {
    let (running, base) = Running::start(&[], &[("LISTEN_ADDR", "127.0.0.1:0")]);

    let stdout = running.wait_for_stdout("proxy_pass http://127.0.0.1:8000;");
    let token_of = |name: &str| {
        stdout
            .lines()
            .find_map(|line| line.strip_prefix(name))
            .unwrap_or_else(|| panic!("no {name} in {stdout}"))
            .to_owned()
    };
    let admin = token_of("ADMIN=");
    let member = token_of("MEMBER=");
    assert!(stdout.contains("auth_request /_meingpt/auth;"), "{stdout}");
    let gateway_addr = base.trim_start_matches("http://");
    assert!(
        stdout.contains(&format!("proxy_pass http://{gateway_addr};")),
        "{stdout}"
    );

    let url = format!("{base}/_meingpt/auth");
    let allowed = get(&url, &[("x-meingpt-jwt", &admin)]).await;
    assert_eq!(allowed.status, 200);
    assert_eq!(allowed.header("x-auth-request-user"), Some("admin-1"));
    let member_answer = get(&url, &[("authorization", &format!("Bearer {member}"))]).await;
    assert_eq!(member_answer.header("x-meingpt-role"), Some("member"));
    assert_eq!(get(&url, &[]).await.status, 401);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn environment_only_mode_proxies_every_signed_in_user_to_gateway_upstream() {
    let issuer = MockIssuer::start().await;
    let upstream = Upstream::start().await;
    let jwks = issuer.jwks_url();
    let upstream_url = upstream.url();
    let (_running, base) = Running::start(
        &[],
        &[
            ("MEINGPT_ORG_ID", issuer.organization()),
            ("MEINGPT_ISSUER", issuer.issuer()),
            ("MEINGPT_JWKS_URL", &jwks),
            ("GATEWAY_UPSTREAM", &upstream_url),
            ("LISTEN_ADDR", "127.0.0.1:0"),
        ],
    );
    let token = issuer.token().sub("env-user").sign();

    let allowed = get(&format!("{base}/x"), &[("x-meingpt-jwt", &token)]).await;
    let refused = get(&format!("{base}/x"), &[]).await;

    assert_eq!(allowed.status, 200);
    assert_eq!(
        upstream.last().header("x-auth-request-user"),
        Some("env-user")
    );
    assert_eq!(refused.status, 401);
    assert_eq!(upstream.count(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_lets_the_request_in_flight_finish() {
    let issuer = MockIssuer::start().await;
    let upstream = Upstream::start().await;
    let jwks = issuer.jwks_url();
    let upstream_url = upstream.url();
    let (mut running, base) = Running::start(
        &[],
        &[
            ("MEINGPT_ORG_ID", issuer.organization()),
            ("MEINGPT_ISSUER", issuer.issuer()),
            ("MEINGPT_JWKS_URL", &jwks),
            ("GATEWAY_UPSTREAM", &upstream_url),
            ("LISTEN_ADDR", "127.0.0.1:0"),
        ],
    );
    let token = issuer.token().sign();
    let url = format!("{base}/hold");
    let in_flight = tokio::spawn(async move { get(&url, &[("x-meingpt-jwt", &token)]).await });
    upstream.wait_for_requests(1).await;

    running.terminate();
    running.wait_for_stderr_line(|line| line.contains("shutting down"));
    // The gateway waits for the held request instead of exiting.
    upstream.open_hold_gate();
    let answer = tokio::time::timeout(PATIENCE, in_flight)
        .await
        .expect("the in-flight request finished")
        .unwrap();

    assert_eq!(answer.status, 200);
    assert_eq!(answer.body, "held and answered\n");
    let status = tokio::task::spawn_blocking(move || {
        let status = running.wait_exit();
        (status, running)
    })
    .await
    .unwrap()
    .0;
    assert!(status.success(), "{status:?}");
    assert!(
        crate::common::client()
            .get(format!("{base}/healthz"))
            .send()
            .await
            .is_err()
    );
}

#[tokio::test]
async fn readyz_answers_503_until_the_issuer_keys_are_loaded() {
    let issuer = MockIssuer::start().await;
    issuer.fail(Fault::Status(500));
    let gateway = Gateway::start(&auth_toml(&issuer), &[]).await;

    let not_ready = get(&gateway.url("/readyz"), &[]).await;
    assert_eq!(not_ready.status, 503);
    let healthy = get(&gateway.url("/healthz"), &[]).await;
    assert_eq!((healthy.status, healthy.body.as_str()), (200, "ok"));

    issuer.recover();
    tokio::time::timeout(PATIENCE, async {
        while get(&gateway.url("/readyz"), &[]).await.status != 200 {
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        }
    })
    .await
    .expect("ready once the issuer serves its keys");
    assert!(issuer.fetch_count() >= 2);
}

#[tokio::test]
async fn metrics_count_verdicts_on_the_metrics_listener_only() {
    let issuer = MockIssuer::start().await;
    let upstream = Upstream::start().await;
    let toml = format!(
        "metrics_listen = \"127.0.0.1:0\"\n{}[[route]]\nprefix = \"/api\"\nupstream = \"{}\"\n\
         [[route]]\nprefix = \"/admin\"\nupstream = \"{}\"\nroles = [\"admin\"]\n",
        auth_toml(&issuer),
        upstream.url(),
        upstream.url()
    );
    let gateway = Gateway::start(&toml, &[]).await;
    let member = issuer.demo_member().sign();
    get(&gateway.url("/api/x"), &[("x-meingpt-jwt", &member)]).await;
    get(&gateway.url("/api/x"), &[]).await;
    get(&gateway.url("/admin"), &[("x-meingpt-jwt", &member)]).await;
    get(
        &gateway.url("/_meingpt/auth"),
        &[("x-meingpt-jwt", &member), ("x-original-uri", "/api/x")],
    )
    .await;

    let metrics_addr = gateway.metrics.expect("a metrics listener");
    let metrics = get(&format!("http://{metrics_addr}/metrics"), &[]).await;

    assert_eq!(metrics.status, 200);
    for line in [
        "meingpt_gateway_requests_total{mode=\"proxy\",verdict=\"allowed\"} 1",
        "meingpt_gateway_requests_total{mode=\"proxy\",verdict=\"unauthenticated\"} 1",
        "meingpt_gateway_requests_total{mode=\"proxy\",verdict=\"forbidden\"} 1",
        "meingpt_gateway_requests_total{mode=\"forward_auth\",verdict=\"allowed\"} 1",
        "meingpt_gateway_upstream_response_seconds_count 1",
    ] {
        assert!(
            metrics.body.lines().any(|l| l == line),
            "{line} missing:\n{}",
            metrics.body
        );
    }
    let main = get(&gateway.url("/metrics"), &[]).await;
    assert_eq!(main.status, 404);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn access_log_has_one_line_per_request_without_token_query_or_email() {
    let issuer = MockIssuer::start().await;
    let upstream = Upstream::start().await;
    let config = temp_dir("log").join("gateway.toml");
    std::fs::write(
        &config,
        format!(
            "{}[[route]]\nprefix = \"/\"\nupstream = \"{}\"\n[route.inject_headers]\n\
             X-Api-Key = \"${{API_KEY}}\"\n",
            auth_toml(&issuer),
            upstream.url()
        ),
    )
    .unwrap();
    let secret = "sk-live-do-not-log-0815";
    let (mut running, base) = Running::start(
        &["--config", config.to_str().unwrap()],
        &[
            ("LISTEN_ADDR", "127.0.0.1:0"),
            ("API_KEY", secret),
            ("RUST_LOG", "trace"),
        ],
    );
    let token = issuer.demo_admin().sign();

    let answer = get(
        &format!("{base}/reports/ada@example.com/view?api_key=query-secret-42"),
        &[("authorization", &format!("Bearer {token}"))],
    )
    .await;
    assert_eq!(answer.status, 200);
    let line = running.wait_for_stderr_line(|line| line.contains("meingpt_gateway::access"));

    assert!(line.contains("method=GET"), "{line}");
    assert!(line.contains("path=/reports/[redacted]/view"), "{line}");
    assert!(line.contains("status=200"), "{line}");
    assert!(
        line.contains("verdict=\"allowed\"") || line.contains("verdict=allowed"),
        "{line}"
    );
    // Two more requests (one refused), then count: one line each, and the
    // last request's line is the last line.
    assert_eq!(get(&format!("{base}/refused"), &[]).await.status, 401);
    assert_eq!(get(&format!("{base}/healthz"), &[]).await.status, 200);
    running.wait_for_stderr_line(|line| {
        line.contains("meingpt_gateway::access") && line.contains("path=/healthz")
    });
    let stderr = running.stderr();
    let access: Vec<&str> = stderr
        .lines()
        .filter(|line| line.contains("meingpt_gateway::access"))
        .collect();
    assert_eq!(access.len(), 3, "not one line per request:\n{stderr}");
    assert!(access[1].contains("path=/refused") && access[1].contains("status=401"));
    for leaked in [
        token.as_str(),
        payload_of(&token),
        "query-secret-42",
        "api_key",
        "ada@example.com",
        "Ada Admin",
        secret,
    ] {
        assert!(!stderr.contains(leaked), "{leaked} was logged:\n{stderr}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn graceful_shutdown_writes_the_access_log_line_of_every_answered_request() {
    let issuer = MockIssuer::start().await;
    let upstream = Upstream::start().await;
    let jwks = issuer.jwks_url();
    let upstream_url = upstream.url();
    let (mut running, base) = Running::start(
        &[],
        &[
            ("MEINGPT_ORG_ID", issuer.organization()),
            ("MEINGPT_ISSUER", issuer.issuer()),
            ("MEINGPT_JWKS_URL", &jwks),
            ("GATEWAY_UPSTREAM", &upstream_url),
            ("LISTEN_ADDR", "127.0.0.1:0"),
            ("RUST_LOG", "info"),
        ],
    );
    let token = issuer.token().sign();
    // Eight clients, 300 requests, then one request held by the upstream
    // while SIGTERM arrives: its line is written after the shutdown began.
    let requests = 300;
    let clients: Vec<_> = (0..8)
        .map(|client| {
            let base = base.clone();
            let token = token.clone();
            tokio::spawn(async move {
                let http = crate::common::client();
                for n in (client..requests).step_by(8) {
                    let answer = http
                        .get(format!("{base}/n/{n}"))
                        .header("x-meingpt-jwt", &token)
                        .send()
                        .await
                        .unwrap();
                    assert_eq!(answer.status(), 200);
                }
            })
        })
        .collect();
    for client in clients {
        client.await.unwrap();
    }
    let url = format!("{base}/hold");
    let held = tokio::spawn(async move { get(&url, &[("x-meingpt-jwt", &token)]).await });
    upstream.wait_for_requests(requests + 1).await;
    running.terminate();
    running.wait_for_stderr_line(|line| line.contains("shutting down"));
    upstream.open_hold_gate();
    assert_eq!(held.await.unwrap().status, 200);
    let (status, running) = tokio::task::spawn_blocking(move || {
        let status = running.wait_exit();
        (status, running)
    })
    .await
    .unwrap();

    assert!(status.success(), "{status:?}");
    let stderr = running.stderr();
    let paths: std::collections::BTreeSet<&str> = stderr
        .lines()
        .filter(|line| line.contains("meingpt_gateway::access"))
        .filter_map(|line| {
            line.split_whitespace()
                .find(|f| f.starts_with("path=/n/") || *f == "path=/hold")
        })
        .collect();
    let access_lines = stderr
        .lines()
        .filter(|line| line.contains("meingpt_gateway::access"))
        .count();
    assert_eq!(
        access_lines,
        requests + 1,
        "lines lost or doubled:\n{stderr}"
    );
    assert_eq!(
        paths.len(),
        requests + 1,
        "not one line per request:\n{stderr}"
    );
    assert!(
        paths.contains("path=/hold"),
        "the held request's line is missing"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn environment_only_mode_sets_forward_auth_headers_and_trusted_proxies_from_gateway_variables()
 {
    let issuer = MockIssuer::start().await;
    let upstream = Upstream::start().await;
    let jwks = issuer.jwks_url();
    let upstream_url = upstream.url();
    let env = |trusted: &'static str| {
        vec![
            ("MEINGPT_ORG_ID", issuer.organization().to_owned()),
            ("MEINGPT_ISSUER", issuer.issuer().to_owned()),
            ("MEINGPT_JWKS_URL", jwks.clone()),
            ("GATEWAY_UPSTREAM", upstream_url.clone()),
            ("GATEWAY_FORWARD_AUTH_PATH", "/auth".to_owned()),
            (
                "GATEWAY_FORWARD_AUTH_URI_HEADER",
                "X-Forwarded-Uri".to_owned(),
            ),
            (
                "GATEWAY_FORWARD_AUTH_METHOD_HEADER",
                "X-Forwarded-Method".to_owned(),
            ),
            ("GATEWAY_TRUSTED_PROXIES", trusted.to_owned()),
            ("LISTEN_ADDR", "127.0.0.1:0".to_owned()),
        ]
    };
    let trusting = env("127.0.0.1, ::1");
    let borrowed: Vec<(&str, &str)> = trusting.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let (_running, base) = Running::start(&[], &borrowed);
    let token = issuer.token().sub("env-user").sign();

    let allowed = get(
        &format!("{base}/auth"),
        &[("x-meingpt-jwt", &token), ("x-forwarded-uri", "/x")],
    )
    .await;
    let conflicting = get(
        &format!("{base}/auth"),
        &[
            ("x-meingpt-jwt", &token),
            ("x-forwarded-uri", "/x"),
            ("x-original-uri", "/y"),
        ],
    )
    .await;
    assert_eq!(allowed.status, 200);
    assert_eq!(allowed.header("x-auth-request-user"), Some("env-user"));
    assert_eq!(conflicting.status, 400);

    let distrusting = env("10.0.0.0/8");
    let borrowed: Vec<(&str, &str)> = distrusting.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let (_running, base) = Running::start(&[], &borrowed);
    let refused = get(
        &format!("{base}/auth"),
        &[("x-meingpt-jwt", &token), ("x-forwarded-uri", "/x")],
    )
    .await;
    assert_eq!(refused.status, 403);
}

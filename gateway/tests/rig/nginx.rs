//! nginx (Debian's package) with `auth_request` to gateway replicas, using
//! `gateway/deploy/nginx.conf` itself with the test's ports put in.
//!
//! Needs `nginx` (`apt-get install nginx`); `MEINGPT_SKIP_NGINX=1` skips.

use std::net::SocketAddr;
use std::path::Path;

use meingpt_auth::testing::MockIssuer;
use serde_json::Value;

use crate::common::{
    Echo, Gateway, Nginx, PATIENCE, RefusalSeen, assert_forward_auth_verdicts, client, deploy_file,
    forward_auth_routes, free_port, json_of, require, substitute,
};

/// nginx with `gateway/deploy/nginx.conf` in its `http {}` block, the
/// addresses replaced by the test's.
fn deployed_nginx(binary: &Path, gateways: [SocketAddr; 2], app: SocketAddr) -> Nginx {
    let listen: SocketAddr = format!("127.0.0.1:{}", free_port())
        .parse()
        .expect("a socket address");
    let site = substitute(
        &deploy_file("nginx.conf"),
        &[
            ("127.0.0.1:3000", &gateways[0].to_string()),
            ("127.0.0.1:3001", &gateways[1].to_string()),
            ("127.0.0.1:9000", &app.to_string()),
            ("127.0.0.1:8080", &listen.to_string()),
        ],
    );
    Nginx::start(binary, &site, &[listen])
}

fn nginx() -> Option<std::path::PathBuf> {
    require("nginx", "MEINGPT_SKIP_NGINX", "run `apt-get install nginx`")
}

#[tokio::test(flavor = "multi_thread")]
async fn nginx_auth_request_allows_refuses_and_overwrites_spoofed_identity_headers() {
    let Some(binary) = nginx() else { return };
    let issuer = MockIssuer::start().await;
    let echo = Echo::start().await;
    let first = Gateway::start(&issuer, &forward_auth_routes(echo.addr));
    let second = Gateway::start(&issuer, &forward_auth_routes(echo.addr));
    let nginx = deployed_nginx(&binary, [first.addr, second.addr], echo.addr);

    assert_forward_auth_verdicts(
        &nginx.url,
        &issuer,
        &echo,
        false,
        RefusalSeen::AsServerError,
    )
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn with_one_of_two_gateway_replicas_stopped_mid_run_every_nginx_verdict_stays_right() {
    let Some(binary) = nginx() else { return };
    let issuer = MockIssuer::start().await;
    let echo = Echo::start().await;
    let mut first = Gateway::start(&issuer, &forward_auth_routes(echo.addr));
    let second = Gateway::start(&issuer, &forward_auth_routes(echo.addr));
    let nginx = deployed_nginx(&binary, [first.addr, second.addr], echo.addr);
    let http = client();
    let admin = issuer.demo_admin().sign();
    let member = issuer.demo_member().sign();

    // (token, expected status, expected user at the app)
    let cases: [(Option<&str>, u16, Option<&str>); 3] = [
        (Some(&admin), 200, Some("admin-1")),
        (Some(&member), 403, None),
        (None, 401, None),
    ];
    let run = async |rounds: usize| {
        for round in 0..rounds {
            for (token, status, user) in &cases {
                let mut request = http.get(format!("{}/admin/round-{round}", nginx.url));
                if let Some(token) = token {
                    request = request.header("x-meingpt-jwt", *token);
                }
                let response = request.send().await.expect("request through nginx");
                assert_eq!(
                    response.status(),
                    *status,
                    "round {round}, expected {status}"
                );
                if let Some(user) = user {
                    let seen: Value = json_of(response).await;
                    assert_eq!(seen["x-auth-request-user"][0], *user);
                }
            }
        }
    };

    run(10).await;
    let path = "/_meingpt/auth";
    let served = |gateway: &Gateway| gateway.logged_requests_to(path);
    // Access-log lines are written in batches: wait until both replicas
    // show every sub-request of the run between them.
    let deadline = std::time::Instant::now() + PATIENCE;
    while served(&first) + served(&second) < 10 * cases.len()
        && std::time::Instant::now() < deadline
    {
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    let (first_served, second_served) = (served(&first), served(&second));
    assert!(
        first_served > 0 && second_served > 0,
        "nginx spreads the sub-requests over both replicas ({first_served} and {second_served})"
    );

    first.process.kill();
    let before = served(&second);
    run(10).await;
    assert_eq!(
        second
            .logged_requests_to_at_least(path, before + 10 * cases.len())
            .await
            - before,
        10 * cases.len(),
        "the remaining replica answered every sub-request"
    );
    assert_eq!(
        echo.requests(),
        20,
        "only the admin's requests reached the app"
    );
    assert_eq!(
        issuer.fetch_count(),
        2,
        "each replica fetched the issuer's keys once"
    );
}

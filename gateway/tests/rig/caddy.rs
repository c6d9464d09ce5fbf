//! Caddy (Debian's package) with `forward_auth` to gateway replicas, using
//! `gateway/deploy/Caddyfile` itself with the test's addresses put in.
//!
//! Needs `caddy` (`apt-get install caddy`); `MEINGPT_SKIP_CADDY=1` skips.

use std::net::SocketAddr;
use std::path::Path;
use std::process::Command;

use meingpt_auth::testing::MockIssuer;

use crate::common::{
    Echo, Gateway, Process, RefusalSeen, TempDir, assert_forward_auth_verdicts, deploy_file,
    forward_auth_routes, free_port, gateway_settings_in, require, substitute,
};

/// A running Caddy with the deployed configuration.
struct Caddy {
    url: String,
    _process: Process,
    _dir: TempDir,
}

impl Caddy {
    /// Starts `caddy run` on the deployed Caddyfile, its site address
    /// replaced by a plain-HTTP loopback one, with its admin endpoint off
    /// and its state in a temporary directory.
    fn start(binary: &Path, gateways: [SocketAddr; 2], app: SocketAddr) -> Self {
        let dir = TempDir::new("caddy");
        let listen = format!("127.0.0.1:{}", free_port());
        let site = substitute(
            &deploy_file("Caddyfile"),
            &[
                ("127.0.0.1:3000", &gateways[0].to_string()),
                ("127.0.0.1:3001", &gateways[1].to_string()),
                ("127.0.0.1:9000", &app.to_string()),
                ("app.example.com", &format!("http://{listen}")),
            ],
        );
        let caddyfile = dir.write(
            "Caddyfile",
            &format!("{{\n\tadmin off\n\tauto_https off\n}}\n\n{site}"),
        );
        let mut command = Command::new(binary);
        command
            .arg("run")
            .arg("--adapter")
            .arg("caddyfile")
            .arg("--config")
            .arg(&caddyfile)
            .env("HOME", dir.path())
            .env("XDG_CONFIG_HOME", dir.path().join("config"))
            .env("XDG_DATA_HOME", dir.path().join("data"));
        let mut process = Process::spawn("caddy", command);
        process.wait_for_port(listen.parse().expect("a socket address"), None);
        Self {
            url: format!("http://{listen}"),
            _process: process,
            _dir: dir,
        }
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn caddy_forward_auth_allows_refuses_and_overwrites_spoofed_identity_headers() {
    let Some(binary) = require("caddy", "MEINGPT_SKIP_CADDY", "run `apt-get install caddy`") else {
        return;
    };
    let issuer = MockIssuer::start().await;
    let echo = Echo::start().await;
    // The Caddyfile names the gateway settings it needs.
    let config = format!(
        "{}\n{}",
        gateway_settings_in(&deploy_file("Caddyfile")),
        forward_auth_routes(echo.addr)
    );
    let first = Gateway::start(&issuer, &config);
    let second = Gateway::start(&issuer, &config);
    let caddy = Caddy::start(&binary, [first.addr, second.addr], echo.addr);

    assert_forward_auth_verdicts(&caddy.url, &issuer, &echo, true, RefusalSeen::AsIs).await;
}

//! The examples' development issuer serves a developer's machine and never
//! a deployment: it starts only with nothing configured and a loopback
//! `LISTEN_ADDR` (or `MEINGPT_DEV_ISSUER=1`), says why on stderr, and any
//! variable an example reads counts as configuration.
//!
//! Build the examples first when running only this module:
//! `cargo build --all-features --examples`.

use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

use crate::common::example::{Running, assert_refused, command, example_binary, free_port};
use crate::customgpt_jwt::key_file;

/// Every example with the sources it is built from.
const EXAMPLES: [(&str, &str); 4] = [
    ("quickstart", "examples/quickstart.rs"),
    ("mcp_server", "examples/mcp_server.rs"),
    ("customgpt_jwt", "examples/customgpt_jwt.rs"),
    ("custom_app", "examples/custom_app"),
];

fn binary(name: &str) -> PathBuf {
    let (_, sources) = EXAMPLES
        .iter()
        .find(|(example, _)| *example == name)
        .expect("a known example");
    example_binary(name, &[sources])
}

fn example(name: &str, vars: &[(&str, &str)]) -> Command {
    command(&binary(name), vars)
}

/// Reads stdout until the example announces the development issuer's
/// tokens; returns the stderr lines that mention the development issuer.
fn development_issuer_lines(running: &mut Running) -> Vec<String> {
    running.read_until(|seen| {
        seen.iter()
            .any(|line| line.contains("Its tokens are valid for one hour"))
    });
    // The reason is written before the tokens; give the stderr reader the
    // moment it needs to collect it.
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let stderr = running.stderr();
        let lines: Vec<String> = stderr
            .lines()
            .filter(|line| line.contains("development issuer"))
            .map(str::to_owned)
            .collect();
        if !lines.is_empty() || Instant::now() > deadline {
            return lines;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn on_loopback_with_nothing_configured_every_example_starts_it_and_says_why_in_one_line() {
    for (name, _) in EXAMPLES {
        let listen = format!("127.0.0.1:{}", free_port());
        let mut running = Running::spawn(example(name, &[("LISTEN_ADDR", &listen)]));
        let lines = development_issuer_lines(&mut running);
        assert_eq!(
            lines,
            [format!(
                "development issuer started (nothing is configured and LISTEN_ADDR {listen} \
                 is loopback): it prints tokens valid for one hour; never use it to serve \
                 real users"
            )],
            "{name}"
        );
    }
}

#[test]
fn on_an_unspecified_address_with_nothing_configured_every_example_refuses_to_start() {
    for (name, _) in EXAMPLES {
        for listen in ["0.0.0.0:0", "[::]:0", "192.0.2.1:3000"] {
            let line = assert_refused(example(name, &[("LISTEN_ADDR", listen)]));
            assert!(
                line.contains("nothing is configured")
                    && line.contains("loopback")
                    && line.contains("MEINGPT_DEV_ISSUER=1"),
                "{name} on {listen}: {line}"
            );
        }
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn meingpt_dev_issuer_1_starts_it_on_an_unspecified_address_and_says_so() {
    let port = free_port();
    let listen = format!("0.0.0.0:{port}");
    let mut running = Running::spawn(example(
        "quickstart",
        &[("LISTEN_ADDR", &listen), ("MEINGPT_DEV_ISSUER", "1")],
    ));
    let lines = development_issuer_lines(&mut running);
    assert_eq!(lines.len(), 1, "{lines:#?}");
    assert!(
        lines[0].starts_with("development issuer started (MEINGPT_DEV_ISSUER=1)"),
        "{lines:#?}"
    );
    let admin = running.value_of("ADMIN=");

    let response = reqwest::Client::new()
        .get(format!("http://127.0.0.1:{port}/me"))
        .header("x-meingpt-jwt", admin)
        .timeout(Duration::from_secs(10))
        .send()
        .await
        .expect("the quickstart answers on loopback");
    assert_eq!(response.status(), 200);
}

#[test]
fn a_deployment_only_variable_counts_as_configuration_and_the_meingpt_settings_are_then_required() {
    let (key, _) = key_file("dev-issuer-refusal");
    let key = key.0.to_str().expect("a UTF-8 temporary path").to_owned();
    let cases: [(&str, (&str, &str)); 6] = [
        ("custom_app", ("MEINGPT_ORIGIN", "https://app.meingpt.com")),
        ("customgpt_jwt", ("CUSTOMGPT_PRIVATE_KEY_PEM", &key)),
        ("customgpt_jwt", ("CUSTOMGPT_AUDIENCE", "customgpt")),
        (
            "customgpt_jwt",
            ("CUSTOMGPT_ISSUER", "https://customgpt.example"),
        ),
        ("mcp_server", ("MCP_ALLOWED_HOSTS", "mcp.example.com")),
        (
            "quickstart",
            ("JWKS_CA_FILE", "/etc/ssl/certs/ca-certificates.crt"),
        ),
    ];
    for (name, variable) in cases {
        let line = assert_refused(example(name, &[("LISTEN_ADDR", "127.0.0.1:0"), variable]));
        assert!(
            line.contains("MEINGPT_ORG_ID"),
            "{name} with {}: {line}",
            variable.0
        );
    }
}

#[test]
fn meingpt_dev_issuer_beside_a_configuration_or_with_another_value_is_refused() {
    let cases: [&[(&str, &str)]; 4] = [
        &[("MEINGPT_DEV_ISSUER", "1"), ("MEINGPT_ORG_ID", "org-1")],
        &[("MEINGPT_DEV_ISSUER", "1"), ("AUTH_TYPE", "jwt_oidc")],
        &[("MEINGPT_DEV_ISSUER", "yes")],
        &[("MEINGPT_DEV_ISSUER", "")],
    ];
    for vars in cases {
        let mut all = vec![("LISTEN_ADDR", "127.0.0.1:0")];
        all.extend_from_slice(vars);
        let line = assert_refused(example("quickstart", &all));
        assert!(line.contains("MEINGPT_DEV_ISSUER"), "{vars:?}: {line}");
    }
}

#[test]
fn with_meingpt_dev_issuer_0_the_loopback_rule_still_decides() {
    let line = assert_refused(example(
        "quickstart",
        &[("LISTEN_ADDR", "0.0.0.0:0"), ("MEINGPT_DEV_ISSUER", "0")],
    ));
    assert!(line.contains("nothing is configured"), "{line}");
    let listen = format!("127.0.0.1:{}", free_port());
    let mut running = Running::spawn(example(
        "quickstart",
        &[("LISTEN_ADDR", &listen), ("MEINGPT_DEV_ISSUER", "0")],
    ));
    let admin = running.value_of("ADMIN=");
    assert_eq!(admin.split('.').count(), 3, "ADMIN is not a JWT: {admin}");
}

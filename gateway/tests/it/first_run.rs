//! A newcomer's first run of the binary: `--help` and `--version`, and a
//! configuration file without `[auth]`: the development issuer on a
//! loopback address, with a working token for each of the file's routes,
//! and the crate's wording of what to configure anywhere else.

use crate::common::binary::{Running, run_to_end};
use crate::common::{Upstream, get, temp_dir};

/// Four routes, one of each kind of policy, all to `upstream`.
fn routes_file(upstream: &str, listen: Option<&str>) -> String {
    let text = format!(
        "{}\
         [[route]]\nprefix = \"/api\"\nupstream = \"{upstream}\"\n\n\
         [[route]]\nprefix = \"/admin\"\nupstream = \"{upstream}\"\nroles = [\"admin\"]\n\n\
         [[route]]\nprefix = \"/data\"\nupstream = \"{upstream}\"\nroles = [\"editor\"]\n\
         team_ids = [\"team-data\"]\n\n\
         [[route]]\nprefix = \"/docs\"\nupstream = \"{upstream}\"\npublic = true\n",
        listen.map_or(String::new(), |listen| format!("listen = \"{listen}\"\n\n")),
    );
    let path = temp_dir("first-run").join("gateway.toml");
    std::fs::write(&path, text).unwrap();
    path.display().to_string()
}

/// The curl commands printed under "Routes, …": the token (resolved from
/// the `NAME=…` lines) and the URL of each.
fn printed_route_requests(stdout: &str) -> Vec<(Option<String>, String)> {
    let value = |name: &str| {
        stdout
            .lines()
            .find_map(|line| line.strip_prefix(&format!("{name}=")))
            .unwrap_or_else(|| panic!("no {name}= line in {stdout}"))
            .to_owned()
    };
    let routes = stdout
        .split_once("Routes, each with a token it admits:\n")
        .unwrap_or_else(|| panic!("no routes section in {stdout}"))
        .1;
    routes
        .lines()
        .filter_map(|line| line.strip_prefix("curl -i "))
        .map(
            |command| match command.strip_prefix("-H \"Authorization: Bearer $") {
                Some(rest) => {
                    let (name, url) = rest.split_once("\" ").expect("a header, then the URL");
                    (Some(value(name)), url.to_owned())
                }
                None => (None, command.to_owned()),
            },
        )
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_loopback_file_without_auth_starts_the_development_issuer_with_a_token_for_each_route() {
    let upstream = Upstream::start().await;
    let path = routes_file(&upstream.url(), None);
    let (running, base) = Running::start(&["--config", &path], &[("LISTEN_ADDR", "127.0.0.1:0")]);
    let stdout = running.wait_for_stdout(&format!("curl -i {base}/docs\n"));
    assert!(
        stdout.contains("No issuer configured: using the embedded development issuer"),
        "{stdout}"
    );

    let requests = printed_route_requests(&stdout);
    let urls: Vec<&str> = requests.iter().map(|(_, url)| url.as_str()).collect();
    assert_eq!(
        urls,
        ["/api", "/admin", "/data", "/docs"].map(|prefix| format!("{base}{prefix}")),
        "{stdout}"
    );
    for (token, url) in &requests {
        let bearer = token.as_ref().map(|token| format!("Bearer {token}"));
        let headers: Vec<(&str, &str)> = bearer
            .iter()
            .map(|bearer| ("authorization", bearer.as_str()))
            .collect();
        let answer = get(url, &headers).await;
        assert_eq!(answer.status, 200, "{url}: {}", answer.body);
        let user = upstream
            .last()
            .header("x-auth-request-user")
            .map(str::to_owned);
        assert_eq!(user.is_some(), token.is_some(), "{url}");
    }
    // The printed member token is the one a restricted route refuses.
    let member = stdout
        .lines()
        .find_map(|line| line.strip_prefix("MEMBER="))
        .unwrap();
    for restricted in ["/admin", "/data"] {
        let answer = get(&format!("{base}{restricted}"), &[("x-meingpt-jwt", member)]).await;
        assert_eq!(answer.status, 403, "{restricted}");
    }
    assert_eq!(get(&format!("{base}/api"), &[]).await.status, 401);
    assert!(
        stdout.contains(&format!(
            "/data -> {}, role editor and team id team-data",
            upstream.url()
        )),
        "{stdout}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gateway_upstream_alone_starts_the_development_issuer_and_proxies_the_printed_token() {
    let upstream = Upstream::start().await;
    let (running, base) = Running::start(
        &[],
        &[
            ("GATEWAY_UPSTREAM", &upstream.url()),
            ("LISTEN_ADDR", "127.0.0.1:0"),
        ],
    );
    let stdout = running.wait_for_stdout(&format!("\" {base}/\n"));

    let requests = printed_route_requests(&stdout);
    assert_eq!(requests.len(), 1, "{stdout}");
    let (token, url) = &requests[0];
    assert_eq!(url, &format!("{base}/"));
    let token = token.as_deref().expect("a token for a signed-in route");
    let answer = get(url, &[("authorization", &format!("Bearer {token}"))]).await;
    assert_eq!(answer.status, 200, "{}", answer.body);
    assert_eq!(
        upstream.last().header("x-auth-request-user"),
        Some("member-1")
    );
    assert_eq!(get(url, &[]).await.status, 401);
    assert_eq!(upstream.count(), 1);
}

#[test]
fn a_file_without_auth_is_refused_off_loopback_with_what_to_configure() {
    let path = routes_file("http://127.0.0.1:9000", Some("0.0.0.0:3000"));
    let expected = "error: MEINGPT_ORG_ID: is not set: set it to your meinGPT organization id \
                    (several: comma separated), or set AUTH_TYPE (jwt_oidc or jwt_local) for \
                    another issuer, or list them under [auth] organizations in the file; the \
                    development issuer starts only on a loopback address, not";
    // The address from the file, or from LISTEN_ADDR over it.
    let from_file: &[(&str, &str)] = &[];
    let from_env: &[(&str, &str)] = &[("LISTEN_ADDR", "192.0.2.1:8080")];
    let runs = [
        (vec!["--config", &path], from_file, "0.0.0.0:3000"),
        (vec!["check", "--config", &path], from_file, "0.0.0.0:3000"),
        (vec!["--config", &path], from_env, "192.0.2.1:8080"),
    ];
    for (args, vars, listen) in runs {
        let (status, stdout, stderr) = run_to_end(&args, vars);
        assert_eq!(status.code(), Some(2), "{args:?}: {stderr}");
        assert_eq!(stderr, format!("{expected} {listen}\n"), "{args:?}");
        assert_eq!(stdout, "", "{args:?}");
    }
}

#[test]
fn check_says_a_loopback_file_without_auth_gets_the_development_issuer() {
    let path = routes_file("http://127.0.0.1:9000", None);
    let (status, stdout, stderr) = run_to_end(&["check", "--config", &path], &[]);
    assert!(status.success(), "{stderr}");
    assert_eq!(
        stdout,
        "ok (no issuer configured: the gateway starts the development issuer, on this \
         loopback address only)\n"
    );
}

#[test]
fn version_prints_the_name_and_version() {
    for flag in ["--version", "-V"] {
        let (status, stdout, stderr) = run_to_end(&[flag], &[]);
        assert!(status.success(), "{flag}: {stderr}");
        assert_eq!(
            stdout,
            format!("meingpt-gateway {}\n", env!("CARGO_PKG_VERSION")),
            "{flag}"
        );
        assert_eq!(stderr, "", "{flag}");
    }
}

#[test]
fn help_names_the_commands_the_file_every_variable_and_the_documentation() {
    let (status, help, stderr) = run_to_end(&["--help"], &[]);
    assert!(status.success(), "{stderr}");
    let (_, short, _) = run_to_end(&["-h"], &[]);
    assert_eq!(short, help);

    for command in [
        "meingpt-gateway [--config FILE]",
        "meingpt-gateway check [--config FILE]",
        "--version",
    ] {
        assert!(help.contains(command), "no {command:?} in:\n{help}");
    }
    for table in [
        "[auth]",
        "[tls]",
        "[connections]",
        "[embed]",
        "[[route]]",
        "organizations",
        "team_ids",
        "embed_partition_cookies",
    ] {
        assert!(help.contains(table), "no {table:?} in:\n{help}");
    }
    let variables = meingpt_auth::config::ENV_VARIABLES.into_iter().chain([
        "GATEWAY_UPSTREAM",
        "GATEWAY_EMBED",
        "LISTEN_ADDR",
        "RUST_LOG",
    ]);
    for variable in variables {
        assert!(help.contains(variable), "no {variable} in:\n{help}");
    }
    assert!(help.contains("development issuer"), "{help}");
    assert!(help.contains("gateway/README.md"), "{help}");
}

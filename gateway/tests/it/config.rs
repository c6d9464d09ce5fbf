//! Configuration errors: `check` exits 2 with one line naming the key or
//! variable; a valid file passes; start-up refuses what `check` refuses.

use crate::common::binary::run_to_end;
use crate::common::temp_dir;

const AUTH: &str = "[auth]\norganizations = [\"clx0987654321\"]\n";
const ROUTE: &str = "[[route]]\nprefix = \"/\"\nupstream = \"http://127.0.0.1:9000\"\n";

fn write(text: &str) -> String {
    let path = temp_dir("config").join("gateway.toml");
    std::fs::write(&path, text).unwrap();
    path.display().to_string()
}

/// Runs `check` on `text`; returns the exit code and stderr.
fn check(text: &str, vars: &[(&str, &str)]) -> (i32, String) {
    let path = write(text);
    let (status, _stdout, stderr) = run_to_end(&["check", "--config", &path], vars);
    (status.code().expect("exited"), stderr)
}

#[test]
fn check_accepts_a_valid_file() {
    let text = format!(
        "listen = \"127.0.0.1:8080\"\nmetrics_listen = \"127.0.0.1:9091\"\nmax_body_bytes = 1048576\n\
         connect_timeout_secs = 5\nresponse_timeout_secs = 60\n\
         trusted_proxies = [\"127.0.0.1\", \"10.0.0.0/8\", \"::1\"]\n\
         [forward_auth]\npath = \"/_auth\"\nuri_header = \"X-Forwarded-Uri\"\n\
         method_header = \"X-Forwarded-Method\"\n\
         {AUTH}{ROUTE}roles = [\"admin\"]\nteam_ids = [\"t1\"]\nteam_names = [\"Engineering\"]\n\
         forward_token = true\nstrip_prefix = true\nallow_unusual_path_characters = true\nframe_ancestors = [\"https://app.meingpt.com\"]\n\
         upgrades = [\"websocket\", \"h2c\"]\n\
         [route.inject_headers]\nAuthorization = \"Bearer ${{OPENAI_API_KEY}}\"\n\
         [connections]\nmax = 1000\nheader_read_timeout_secs = 10\nidle_timeout_secs = 75\n\
         tls_handshake_timeout_secs = 5\n"
    );
    let path = write(&text);

    let (status, stdout, stderr) =
        run_to_end(&["check", "--config", &path], &[("OPENAI_API_KEY", "sk-1")]);

    assert!(status.success(), "{stderr}");
    assert_eq!(stdout.trim(), "ok");
}

#[test]
fn check_names_the_key_of_each_error_in_one_line() {
    let cases: Vec<(String, &str)> = vec![
        (format!("lissten = \"127.0.0.1:1\"\n{AUTH}"), "lissten"),
        (format!("listen = \"everywhere\"\n{AUTH}"), "listen"),
        (
            format!("max_body_bytes = \"big\"\n{AUTH}"),
            "max_body_bytes",
        ),
        (
            format!("response_timeout_secs = 0\n{AUTH}"),
            "response_timeout_secs",
        ),
        (
            format!("forward_auth_path = \"auth\"\n{AUTH}"),
            "forward_auth_path",
        ),
        (
            "[auth]\norganizations = []\n".to_owned(),
            "auth.organizations",
        ),
        (
            "[auth]\norganisations = [\"x\"]\n".to_owned(),
            "auth.organisations",
        ),
        (
            format!("{AUTH}{ROUTE}rolez = [\"admin\"]\n"),
            "route[0].rolez",
        ),
        (
            format!("{AUTH}[[route]]\nprefix = \"/\"\nupstream = \"https://api.example.com\"\n"),
            "route[0].upstream",
        ),
        (
            format!("{AUTH}[[route]]\nprefix = \"api\"\nupstream = \"http://127.0.0.1:1\"\n"),
            "route[0].prefix",
        ),
        (format!("{AUTH}{ROUTE}{ROUTE}"), "route[1].prefix"),
        (
            format!("{AUTH}{ROUTE}public = true\nroles = [\"admin\"]\n"),
            "route[0].public",
        ),
        (
            format!("{AUTH}{ROUTE}frame_ancestors = [\"javascript:alert(1)\"]\n"),
            "route[0].frame_ancestors",
        ),
        (
            format!("{AUTH}{ROUTE}[route.inject_headers]\nX-Auth-Request-User = \"admin\"\n"),
            "route[0].inject_headers.X-Auth-Request-User",
        ),
        (
            format!(
                "{AUTH}[tls]\ncert = \"/nonexistent/cert.pem\"\nkey = \"/nonexistent/key.pem\"\n"
            ),
            "tls.cert",
        ),
        (format!("{AUTH}[[route]\n"), "line 3"),
        (
            format!("trusted_proxies = [\"localhost\"]\n{AUTH}"),
            "trusted_proxies",
        ),
        (
            format!("{AUTH}[forward_auth]\npath = \"auth\"\n"),
            "forward_auth.path",
        ),
        (
            format!("{AUTH}[forward_auth]\nuri_header = \"X Original URI\"\n"),
            "forward_auth.uri_header",
        ),
        (
            format!("{AUTH}[forward_auth]\nuri_header = \"Authorization\"\n"),
            "forward_auth.uri_header",
        ),
        (
            format!("{AUTH}[forward_auth]\nmethod_header = \"X-Original-URI\"\n"),
            "forward_auth.method_header",
        ),
        (
            format!("{AUTH}[forward_auth]\nurl_header = \"X-Original-URL\"\n"),
            "forward_auth.url_header",
        ),
        (format!("{AUTH}[connections]\nmax = 0\n"), "connections.max"),
        (
            format!("{AUTH}[connections]\nidle_timeout_secs = -1\n"),
            "connections.idle_timeout_secs",
        ),
        (
            format!("{AUTH}[connections]\nidle_timeout = 5\n"),
            "connections.idle_timeout",
        ),
        (
            format!("{AUTH}{ROUTE}upgrades = [\"web socket\"]\n"),
            "route[0].upgrades",
        ),
    ];
    for (text, key) in cases {
        let (code, stderr) = check(&text, &[]);
        assert_eq!(code, 2, "{key}: {stderr}");
        let lines: Vec<&str> = stderr.lines().collect();
        assert_eq!(lines.len(), 1, "{key}: not one line: {stderr}");
        assert!(
            lines[0].starts_with(&format!("error: {key}: ")),
            "{key}: the error does not name it: {stderr}"
        );
    }
}

#[test]
fn missing_secret_variable_is_named_by_check_and_refuses_start() {
    let text = format!(
        "{AUTH}{ROUTE}[route.inject_headers]\nAuthorization = \"Bearer ${{OPENAI_API_KEY}}\"\n"
    );
    let (code, stderr) = check(&text, &[]);
    assert_eq!(code, 2);
    assert!(
        stderr.starts_with("error: route[0].inject_headers.Authorization: environment variable OPENAI_API_KEY is not set"),
        "{stderr}"
    );

    let path = write(&text);
    let (status, _stdout, stderr) =
        run_to_end(&["--config", &path], &[("LISTEN_ADDR", "127.0.0.1:0")]);
    assert_eq!(status.code(), Some(2));
    assert!(stderr.contains("OPENAI_API_KEY"), "{stderr}");
    assert!(!stderr.contains("listening"), "{stderr}");
}

#[test]
fn secret_values_never_appear_in_errors() {
    let text = format!("{AUTH}{ROUTE}[route.inject_headers]\nX-Api-Key = \"${{API_KEY}}\"\n");
    // A value no header may carry: the error names the key, not the value.
    let (code, stderr) = check(&text, &[("API_KEY", "sk-live-7f3a\u{7f}x")]);

    assert_eq!(code, 2);
    assert!(
        stderr.starts_with("error: route[0].inject_headers.X-Api-Key"),
        "{stderr}"
    );
    assert!(!stderr.contains("sk-live-7f3a"), "{stderr}");
}

#[test]
fn environment_mode_names_the_variable_at_fault() {
    let cases = [
        (
            vec![("MEINGPT_ORG_ID", "org"), ("GATEWAY_UPSTREAM", "ftp://x")],
            "GATEWAY_UPSTREAM",
        ),
        (
            vec![("MEINGPT_ORG_ID", "org"), ("LISTEN_ADDR", "localhost")],
            "LISTEN_ADDR",
        ),
        (vec![("AUTH_TYPE", "jwt_magic")], "AUTH_TYPE"),
        (
            vec![
                ("MEINGPT_ORG_ID", "org"),
                ("GATEWAY_TRUSTED_PROXIES", "10.0.0.0/8, nginx"),
            ],
            "GATEWAY_TRUSTED_PROXIES",
        ),
        (
            vec![
                ("MEINGPT_ORG_ID", "org"),
                ("GATEWAY_FORWARD_AUTH_URI_HEADER", "X-meinGPT-JWT"),
            ],
            "GATEWAY_FORWARD_AUTH_URI_HEADER",
        ),
        (
            vec![
                ("MEINGPT_ORG_ID", "org"),
                ("GATEWAY_FORWARD_AUTH_METHOD_HEADER", "a b"),
            ],
            "GATEWAY_FORWARD_AUTH_METHOD_HEADER",
        ),
        (
            vec![
                ("MEINGPT_ORG_ID", "org"),
                ("GATEWAY_FORWARD_AUTH_PATH", "auth"),
            ],
            "GATEWAY_FORWARD_AUTH_PATH",
        ),
    ];
    for (vars, key) in cases {
        let (status, _stdout, stderr) = run_to_end(&["check"], &vars);
        assert_eq!(status.code(), Some(2), "{key}: {stderr}");
        assert_eq!(stderr.lines().count(), 1, "{key}: {stderr}");
        assert!(
            stderr.starts_with("error: ") && stderr.contains(key),
            "{key}: {stderr}"
        );
    }
}

#[test]
fn the_old_forward_auth_path_key_says_where_it_moved() {
    let (code, stderr) = check(&format!("forward_auth_path = \"/_auth\"\n{AUTH}"), &[]);

    assert_eq!(code, 2);
    assert!(
        stderr.starts_with("error: forward_auth_path: moved") && stderr.contains("[forward_auth]"),
        "{stderr}"
    );
}

#[test]
fn development_issuer_is_refused_on_a_non_loopback_address() {
    let (status, _stdout, stderr) = run_to_end(&[], &[("LISTEN_ADDR", "0.0.0.0:0")]);

    assert_eq!(status.code(), Some(2));
    assert!(
        stderr.contains("MEINGPT_ORG_ID") && stderr.contains("loopback"),
        "{stderr}"
    );
    assert!(!stderr.contains("listening"), "{stderr}");
}

#[test]
fn unknown_arguments_are_refused() {
    let (status, _stdout, stderr) = run_to_end(&["--port", "80"], &[]);

    assert_eq!(status.code(), Some(2));
    assert!(stderr.contains("--port"), "{stderr}");
}

#[test]
fn injecting_a_connection_level_or_identity_header_is_refused_naming_it() {
    for name in [
        "Host",
        "Connection",
        "Transfer-Encoding",
        "Upgrade",
        "Keep-Alive",
        "TE",
        "X-Auth-Request-User",
        "X_Auth_Request_User",
        "X_meinGPT_Role",
    ] {
        let text = format!("{AUTH}{ROUTE}[route.inject_headers]\n{name} = \"value\"\n");
        let (code, stderr) = check(&text, &[]);
        assert_eq!(code, 2, "{name}: {stderr}");
        assert!(
            stderr.starts_with(&format!("error: route[0].inject_headers.{name}: ")),
            "{name}: {stderr}"
        );
    }
}

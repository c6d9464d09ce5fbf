//! The MCP server example as meinGPT uses it: the compiled binary, driven by
//! the official MCP SDK's own client (rmcp, Streamable HTTP) with the user's
//! token in `X-meinGPT-JWT`.
//!
//! Cargo builds examples for a plain `cargo test`; when only this test is
//! selected (`cargo test --test it mcp_server`) build the example first:
//! `cargo build --all-features --example mcp_server`.

use std::collections::HashMap;
use std::time::Duration;

use crate::common::example::{Running, command, example_binary, free_port};
use http::{HeaderName, HeaderValue};
use meingpt_auth::testing::MockIssuer;
use rmcp::ServiceExt;
use rmcp::model::{CallToolRequestParams, CallToolResult, ClientConfig};
use rmcp::service::{ClientInitializeError, RoleClient, RunningService};
use rmcp::transport::StreamableHttpClientTransport;
use rmcp::transport::streamable_http_client::{
    StreamableHttpClientTransportConfig, StreamableHttpError,
};
use serde_json::json;

/// Every MCP exchange is bounded by this.
const ANSWER_WITHIN: Duration = Duration::from_secs(15);

type Client = RunningService<RoleClient, ClientConfig>;

/// The example, configured for `issuer`, listening on a free loopback port;
/// returns it and the MCP endpoint's URL.
fn start(issuer: &MockIssuer, extra: &[(&str, &str)]) -> (Running, String) {
    let listen = format!("127.0.0.1:{}", free_port());
    let mut vars = vec![
        ("LISTEN_ADDR", listen.as_str()),
        ("MEINGPT_ORG_ID", issuer.organization()),
        ("MEINGPT_ISSUER", issuer.issuer()),
    ];
    vars.extend_from_slice(extra);
    let mut running = Running::spawn(command(&binary(), &vars));
    running.read_until(|seen| {
        seen.iter()
            .any(|line| line.contains("Verifying tokens from the configured issuer"))
    });
    (running, format!("http://{listen}/mcp"))
}

fn binary() -> std::path::PathBuf {
    example_binary("mcp_server", &["examples/mcp_server.rs"])
}

/// Connects rmcp's Streamable HTTP client, with `X-meinGPT-JWT: token` on
/// every request when a token is given.
async fn connect(url: &str, token: Option<&str>) -> Result<Client, ClientInitializeError> {
    let mut headers = HashMap::new();
    if let Some(token) = token {
        headers.insert(
            HeaderName::from_static("x-meingpt-jwt"),
            HeaderValue::from_str(token).unwrap(),
        );
    }
    let transport = StreamableHttpClientTransport::from_config(
        StreamableHttpClientTransportConfig::with_uri(url).custom_headers(headers),
    );
    tokio::time::timeout(ANSWER_WITHIN, ClientConfig::default().serve(transport))
        .await
        .expect("the MCP handshake did not finish in time")
}

async fn call(client: &Client, tool: &str) -> CallToolResult {
    tokio::time::timeout(
        ANSWER_WITHIN,
        client.call_tool(CallToolRequestParams::new(tool.to_owned())),
    )
    .await
    .unwrap_or_else(|_| panic!("{tool} did not answer in time"))
    .unwrap_or_else(|e| panic!("{tool}: {e}"))
}

fn text_of(result: &CallToolResult) -> String {
    result
        .content
        .iter()
        .filter_map(|block| block.as_text().map(|t| t.text.clone()))
        .collect::<Vec<_>>()
        .join("\n")
}

/// The `WWW-Authenticate` challenge of the 401 the client's handshake got.
fn challenge_of(error: &ClientInitializeError) -> String {
    let ClientInitializeError::TransportError { error, .. } = error else {
        panic!("expected a transport error, got {error:?}");
    };
    match error
        .error
        .downcast_ref::<StreamableHttpError<reqwest::Error>>()
    {
        Some(StreamableHttpError::AuthRequired(required)) => {
            required.www_authenticate_header.clone()
        }
        _ => panic!("expected 401 with a challenge, got {error:?}"),
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn without_a_token_the_mcp_client_is_refused_with_401_and_a_bearer_challenge() {
    let issuer = MockIssuer::start().await;
    let (mut server, url) = start(&issuer, &[]);
    // The example loads the keys at start-up.
    assert_eq!(issuer.fetch_count(), 1);

    let refused = connect(&url, None)
        .await
        .expect_err("connected without a token");
    assert_eq!(challenge_of(&refused), r#"Bearer realm="meingpt""#);

    // The same as a plain HTTP call: 401, the challenge, and no further
    // JWKS fetch.
    let response = reqwest::Client::new()
        .post(&url)
        .header("content-type", "application/json")
        .header("accept", "application/json, text/event-stream")
        .body(r#"{"jsonrpc":"2.0","id":1,"method":"tools/list"}"#)
        .timeout(ANSWER_WITHIN)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 401);
    assert_eq!(
        response.headers()["www-authenticate"],
        r#"Bearer realm="meingpt""#
    );
    assert_eq!(issuer.fetch_count(), 1);

    // A token the issuer did not sign: 401 invalid_token, seen by the client.
    let stranger = MockIssuer::start().await;
    let forged = stranger.token().sub("mallory").role("admin").sign();
    let refused = connect(&url, Some(&forged))
        .await
        .expect_err("connected with a forged token");
    let challenge = challenge_of(&refused);
    assert!(
        challenge.starts_with(r#"Bearer realm="meingpt", error="invalid_token""#),
        "{challenge}"
    );
    assert!(server.is_running(), "the server exited");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_member_sees_itself_in_whoami_and_admin_report_refuses_it() {
    let issuer = MockIssuer::start().await;
    let (mut server, url) = start(&issuer, &[]);
    let member = issuer
        .token()
        .sub("member-7")
        .username("Max Member")
        .role("member")
        .team("team-mkt", "Marketing")
        .team("team-eng", "Engineering")
        .sign();

    let client = connect(&url, Some(&member)).await.expect("handshake");
    let tools = tokio::time::timeout(ANSWER_WITHIN, client.list_all_tools())
        .await
        .expect("tools/list in time")
        .expect("tools/list");
    let mut names: Vec<&str> = tools.iter().map(|tool| tool.name.as_ref()).collect();
    names.sort_unstable();
    assert_eq!(names, ["admin_report", "whoami"]);

    let whoami = call(&client, "whoami").await;
    assert_ne!(whoami.is_error, Some(true), "{whoami:?}");
    assert_eq!(
        whoami.structured_content,
        Some(json!({
            "sub": "member-7",
            "username": "Max Member",
            "role": "member",
            "teams": [
                { "id": "team-mkt", "name": "Marketing" },
                { "id": "team-eng", "name": "Engineering" },
            ],
        }))
    );

    // The role check inside the tool: a tool error result the client (and
    // the model) can read, not a protocol error.
    let report = call(&client, "admin_report").await;
    assert_eq!(report.is_error, Some(true), "{report:?}");
    assert_eq!(
        text_of(&report),
        "admin_report is only for organization admins."
    );
    assert_eq!(report.structured_content, None);

    // Every call was verified with the key set loaded at start-up.
    assert_eq!(issuer.fetch_count(), 1);
    let _ = client.cancel().await;
    assert!(server.is_running(), "the server exited");
}

#[tokio::test(flavor = "multi_thread")]
async fn an_admin_may_run_admin_report() {
    let issuer = MockIssuer::start().await;
    let (_server, url) = start(&issuer, &[]);
    let admin = issuer
        .token()
        .sub("admin-1")
        .role("admin")
        .team("team-eng", "Engineering")
        .sign();

    let client = connect(&url, Some(&admin)).await.expect("handshake");
    let report = call(&client, "admin_report").await;
    assert_ne!(report.is_error, Some(true), "{report:?}");
    assert_eq!(
        report.structured_content,
        Some(json!({
            "organization_id": issuer.organization(),
            "organization_name": "Example GmbH",
            "requested_by": "admin-1",
            "teams_of_requester": 1,
        }))
    );
    let whoami = call(&client, "whoami").await;
    assert_eq!(whoami.structured_content.unwrap()["role"], "admin");
    let _ = client.cancel().await;
}

/// `initialize` by hand, with an explicit `Host` header.
pub(crate) async fn initialize_with_host(url: &str, host: &str, token: &str) -> reqwest::Response {
    reqwest::Client::new()
        .post(url)
        .header("host", host)
        .header("x-meingpt-jwt", token)
        .header("content-type", "application/json")
        .header("accept", "application/json, text/event-stream")
        .body(
            json!({
                "jsonrpc": "2.0",
                "id": 1,
                "method": "initialize",
                "params": {
                    "protocolVersion": "2025-06-18",
                    "capabilities": {},
                    "clientInfo": { "name": "test", "version": "1" },
                },
            })
            .to_string(),
        )
        .timeout(ANSWER_WITHIN)
        .send()
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_host_name_outside_rmcps_allow_list_is_refused_until_mcp_allowed_hosts_names_it() {
    let issuer = MockIssuer::start().await;
    let token = issuer.token().sub("member-7").sign();

    let (_server, url) = start(&issuer, &[]);
    let response = initialize_with_host(&url, "mcp.example.com", &token).await;
    assert_eq!(response.status(), 403);
    assert_eq!(
        response.text().await.unwrap(),
        "Forbidden: Host header is not allowed"
    );

    let (_server, url) = start(&issuer, &[("MCP_ALLOWED_HOSTS", "mcp.example.com")]);
    let response = initialize_with_host(&url, "mcp.example.com", &token).await;
    assert_eq!(response.status(), 200);
    assert!(response.headers().contains_key("mcp-session-id"));
}

#[tokio::test(flavor = "multi_thread")]
async fn without_configuration_it_prints_admin_and_member_tokens_that_work() {
    let listen = format!("127.0.0.1:{}", free_port());
    let mut server = Running::spawn(command(&binary(), &[("LISTEN_ADDR", &listen)]));
    let url = format!("http://{listen}/mcp");
    let first = server.read_until(|seen| !seen.is_empty())[0].clone();
    assert_eq!(first, format!("meingpt-auth MCP server listening on {url}"));
    let admin = server.value_of("ADMIN=");
    let member = server.value_of("MEMBER=");

    let client = connect(&url, Some(&admin))
        .await
        .expect("handshake as admin");
    let report = call(&client, "admin_report").await;
    assert_ne!(report.is_error, Some(true), "{report:?}");
    let _ = client.cancel().await;

    let client = connect(&url, Some(&member))
        .await
        .expect("handshake as member");
    let whoami = call(&client, "whoami").await;
    assert_eq!(
        whoami.structured_content,
        Some(json!({
            "sub": "member-1",
            "username": "Max Member",
            "role": "member",
            "teams": [{ "id": "team-mkt", "name": "Marketing" }],
        }))
    );
    assert_eq!(call(&client, "admin_report").await.is_error, Some(true));
    let _ = client.cancel().await;

    // No token ever reaches the logs.
    let stderr = server.stderr();
    assert!(
        !stderr.contains(&admin) && !stderr.contains(&member),
        "{stderr}"
    );
}

#[test]
fn an_empty_mcp_allowed_hosts_is_refused_with_one_line_naming_it() {
    let mut running = Running::spawn(command(
        &binary(),
        &[("LISTEN_ADDR", "127.0.0.1:0"), ("MCP_ALLOWED_HOSTS", " , ")],
    ));
    let status = running.wait_exit();
    assert!(!status.success());
    let stderr = running.stderr();
    assert_eq!(stderr.lines().count(), 1, "{stderr:?}");
    assert!(stderr.contains("MCP_ALLOWED_HOSTS"), "{stderr:?}");
}

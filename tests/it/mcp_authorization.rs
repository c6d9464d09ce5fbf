//! MCP authorization (the MCP specification's OAuth profile) with clients
//! no one here wrote: the official Python SDK's `OAuthClientProvider`
//! (`gateway/tests/rig/python/oauth_client.py`, beside the gateway rig's
//! client) and the official TypeScript SDK's
//! (`interop/mcp_oauth_client.mjs`) sign in to `examples/mcp_server` knowing
//! only its URL. The example accepts meinGPT's tokens in `X-meinGPT-JWT`
//! and, beside them, access tokens of an OAuth authorization server (the
//! test kit's `MockIssuer` with `OAuthServer`) bound to its resource.
//!
//! Needs the Python venv (`gateway/tests/rig/python/.venv`, or
//! `MEINGPT_RIG_PYTHON`; `MEINGPT_SKIP_PYTHON_MCP=1` skips the Python
//! client) and `npm ci --prefix interop`; `bash scripts/test.sh` makes
//! both. Build the example first when only this module runs: `cargo build
//! --all-features --example mcp_server`.

use std::path::{Path, PathBuf};
use std::process::Stdio;

use crate::common::example::{PATIENCE, Running, command, example_binary, free_port};
use crate::mcp_server::initialize_with_host;
use meingpt_auth::testing::{MockIssuer, OAuthServer};
use serde_json::{Value, json};

/// The example with meinGPT and an OAuth authorization server configured,
/// and the MCP resource at its `/mcp`.
struct Setup {
    meingpt: MockIssuer,
    oauth: MockIssuer,
    url: String,
    base: String,
    _server: Running,
}

/// The scope every tool of the example needs of OAuth clients.
const SCOPE: &str = "mcp:tools";

async fn start() -> Setup {
    let meingpt = MockIssuer::start().await;
    let oauth = MockIssuer::for_organization("oauth").await;
    oauth.serve_oauth(
        OAuthServer::new()
            .client("ci-bot", "s3cret", [SCOPE])
            .dynamic_registration(true)
            .scopes_supported([SCOPE])
            .user("alice"),
    );
    let listen = format!("127.0.0.1:{}", free_port());
    let base = format!("http://{listen}");
    let url = format!("{base}/mcp");
    let mut server = Running::spawn(command(
        &example_binary("mcp_server", &["examples/mcp_server.rs"]),
        &[
            ("LISTEN_ADDR", &listen),
            ("MEINGPT_ORG_ID", meingpt.organization()),
            ("MEINGPT_ISSUER", meingpt.issuer()),
            ("AUTH_TYPE", "jwt_oidc"),
            ("JWT_ISS", oauth.issuer()),
            ("MCP_RESOURCE_URL", &url),
            ("MCP_SCOPES", SCOPE),
        ],
    ));
    server.read_until(|seen| {
        seen.iter()
            .any(|line| line.contains("Verifying tokens from the configured issuer"))
    });
    Setup {
        meingpt,
        oauth,
        url,
        base,
        _server: server,
    }
}

impl Setup {
    fn metadata_url(&self) -> String {
        format!("{}/.well-known/oauth-protected-resource/mcp", self.base)
    }

    /// A `tools/list` call by hand with `Authorization: Bearer token`.
    async fn call_with_bearer(&self, token: Option<&str>) -> reqwest::Response {
        let mut request = reqwest::Client::new()
            .post(&self.url)
            .header("content-type", "application/json")
            .header("accept", "application/json, text/event-stream")
            .body(r#"{"jsonrpc":"2.0","id":1,"method":"tools/list"}"#)
            .timeout(PATIENCE);
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        request.send().await.unwrap()
    }

    /// An access token of the authorization server, as a client would get
    /// it for `resource` with `scope`.
    async fn client_credentials_token(&self, resource: &str, scope: &str) -> String {
        let answer: Value = reqwest::Client::new()
            .post(format!("{}/oauth/token", self.oauth.issuer()))
            .basic_auth("ci-bot", Some("s3cret"))
            .form(&[
                ("grant_type", "client_credentials"),
                ("resource", resource),
                ("scope", scope),
            ])
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        answer["access_token"].as_str().expect("a token").to_owned()
    }
}

/// The official MCP SDK clients.
#[derive(Debug, Clone, Copy)]
enum Sdk {
    Python,
    TypeScript,
}

impl Sdk {
    /// Runs the SDK's client against `url` to call `tool`: `Ok(text)` of
    /// the tool's answer, `Err(what ended it)` (such as `"403"`); `None`
    /// when the Python client is skipped.
    async fn call(self, url: &str, tool: &str, flow: &[&str]) -> Option<Result<String, String>> {
        let root = Path::new(env!("CARGO_MANIFEST_DIR"));
        let mut command = match self {
            Self::Python => {
                let mut command = tokio::process::Command::new(python()?);
                command.arg(root.join("gateway/tests/rig/python/oauth_client.py"));
                command
            }
            Self::TypeScript => {
                let sdk = root.join("interop/node_modules/@modelcontextprotocol/sdk");
                assert!(
                    sdk.is_dir(),
                    "{} is missing: run `npm ci --prefix interop` in {}",
                    sdk.display(),
                    root.display()
                );
                let mut command = tokio::process::Command::new("node");
                command.arg(root.join("interop/mcp_oauth_client.mjs"));
                command
            }
        };
        command
            .arg(url)
            .arg(tool)
            .args(flow)
            .current_dir(root)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        let output = tokio::time::timeout(PATIENCE * 3, command.output())
            .await
            .unwrap_or_else(|_| panic!("the {self:?} MCP client did not finish in time"))
            .unwrap_or_else(|e| panic!("cannot run the {self:?} MCP client: {e}"));
        let stdout = String::from_utf8_lossy(&output.stdout);
        let last = stdout.lines().last().unwrap_or_default();
        let outcome = if let Some(text) = last.strip_prefix("result: ") {
            Ok(text.to_owned())
        } else if let Some(error) = last.strip_prefix("error: ") {
            Err(error.to_owned())
        } else {
            panic!(
                "the {self:?} MCP client printed {stdout:?}, stderr {:?}",
                String::from_utf8_lossy(&output.stderr)
            )
        };
        assert_eq!(output.status.success(), outcome.is_ok(), "{outcome:?}");
        Some(outcome)
    }

    /// The client-credentials flow's arguments for the pre-registered
    /// client, holding `token` already when given.
    fn client_credentials<'a>(self, issuer: &'a str, token: Option<&'a str>) -> Vec<&'a str> {
        let mut flow = vec!["client-credentials", "ci-bot", "s3cret", issuer];
        if let Self::TypeScript = self {
            // The TypeScript SDK's client-credentials flow asks for the scope
            // it is configured with.
            flow.push(SCOPE);
        }
        flow.extend(token);
        flow
    }
}

/// The Python with the official MCP SDK, or `None` when
/// `MEINGPT_SKIP_PYTHON_MCP=1`; panics with how to install it otherwise.
fn python() -> Option<PathBuf> {
    if std::env::var("MEINGPT_SKIP_PYTHON_MCP").as_deref() == Ok("1") {
        eprintln!("MEINGPT_SKIP_PYTHON_MCP=1: skipping the Python MCP client");
        return None;
    }
    let python = std::env::var_os("MEINGPT_RIG_PYTHON")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            Path::new(env!("CARGO_MANIFEST_DIR")).join("gateway/tests/rig/python/.venv/bin/python")
        });
    let has_sdk = std::process::Command::new(&python)
        .args(["-c", "import mcp.client.auth, mcp.client.streamable_http"])
        .output()
        .is_ok_and(|output| output.status.success());
    assert!(
        has_sdk,
        "this test needs Python's official MCP SDK at {}: run `bash scripts/test.sh` (or name \
         another Python with MEINGPT_RIG_PYTHON; MEINGPT_SKIP_PYTHON_MCP=1 skips)",
        python.display()
    );
    Some(python)
}

/// The user `whoami` answered with.
fn sub_of(whoami: &str) -> String {
    let user: Value = serde_json::from_str(whoami).unwrap_or_else(|_| panic!("{whoami}"));
    user["sub"].as_str().expect("a sub").to_owned()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_refused_request_names_the_metadata_and_the_metadata_names_the_authorization_server() {
    let setup = start().await;
    let refused = setup.call_with_bearer(None).await;
    assert_eq!(refused.status(), 401);
    assert_eq!(
        refused.headers()["www-authenticate"],
        format!(
            r#"Bearer realm="meingpt", resource_metadata="{}""#,
            setup.metadata_url()
        )
        .as_str()
    );

    // Public: no token needed, at the path-suffixed URL and at the root.
    for url in [
        setup.metadata_url(),
        format!("{}/.well-known/oauth-protected-resource", setup.base),
    ] {
        let response = reqwest::get(&url).await.unwrap();
        assert_eq!(response.status(), 200, "{url}");
        assert_eq!(response.headers()["content-type"], "application/json");
        assert_eq!(response.headers()["cache-control"], "public, max-age=3600");
        let document: Value = response.json().await.unwrap();
        assert_eq!(
            document,
            json!({
                "resource": setup.url,
                // The OAuth authorization server first: MCP clients take the
                // first one.
                "authorization_servers": [setup.oauth.issuer(), setup.meingpt.issuer()],
                "scopes_supported": [SCOPE],
                "bearer_methods_supported": ["header"],
            })
        );
    }
}

async fn client_credentials_sign_in(sdk: Sdk) {
    let setup = start().await;
    let flow = sdk.client_credentials(setup.oauth.issuer(), None);
    let Some(outcome) = sdk.call(&setup.url, "whoami", &flow).await else {
        return;
    };
    assert_eq!(sub_of(&outcome.expect("whoami answers")), "ci-bot");
    let grants = setup.oauth.oauth_grants();
    assert_eq!(grants.len(), 1, "{grants:?}");
    assert_eq!(grants[0].grant_type, "client_credentials");
    assert_eq!(grants[0].resources, [setup.url.as_str()]);
    assert_eq!(grants[0].scopes, [SCOPE]);
}

#[tokio::test(flavor = "multi_thread")]
async fn the_python_sdk_client_signs_in_with_client_credentials_and_calls_a_tool_as_its_client() {
    client_credentials_sign_in(Sdk::Python).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn the_typescript_sdk_client_signs_in_with_client_credentials_and_calls_a_tool_as_its_client()
{
    client_credentials_sign_in(Sdk::TypeScript).await;
}

async fn authorization_code_sign_in(sdk: Sdk) {
    let setup = start().await;
    let Some(outcome) = sdk
        .call(&setup.url, "whoami", &["authorization-code"])
        .await
    else {
        return;
    };
    assert_eq!(sub_of(&outcome.expect("whoami answers")), "alice");
    let grants = setup.oauth.oauth_grants();
    assert_eq!(grants.len(), 1, "{grants:?}");
    assert_eq!(grants[0].grant_type, "authorization_code");
    assert_eq!(grants[0].sub, "alice");
    assert_eq!(grants[0].resources, [setup.url.as_str()]);
    assert_eq!(
        grants[0].scopes,
        [SCOPE],
        "the scope the metadata publishes"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn the_python_sdk_client_signs_in_with_an_authorization_code_and_pkce_as_the_user() {
    authorization_code_sign_in(Sdk::Python).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn the_typescript_sdk_client_signs_in_with_an_authorization_code_and_pkce_as_the_user() {
    authorization_code_sign_in(Sdk::TypeScript).await;
}

async fn audience_binding(sdk: Sdk) {
    let setup = start().await;
    // Right issuer, right scope, another resource: a token passed through
    // from elsewhere.
    let elsewhere = setup
        .client_credentials_token("https://other.example.com/mcp", SCOPE)
        .await;
    let refused = setup.call_with_bearer(Some(&elsewhere)).await;
    assert_eq!(refused.status(), 401);
    assert_eq!(
        refused.headers()["www-authenticate"],
        format!(
            "Bearer realm=\"meingpt\", error=\"invalid_token\", error_description=\"the token \
             is meant for another audience\", resource_metadata=\"{}\"",
            setup.metadata_url()
        )
        .as_str()
    );

    // The client holding that token is refused, and signs in again for
    // this resource.
    let flow = sdk.client_credentials(setup.oauth.issuer(), Some(&elsewhere));
    let Some(outcome) = sdk.call(&setup.url, "whoami", &flow).await else {
        return;
    };
    assert_eq!(sub_of(&outcome.expect("whoami answers")), "ci-bot");
    let grants = setup.oauth.oauth_grants();
    assert_eq!(grants.len(), 2, "{grants:?}");
    assert_eq!(grants[1].resources, [setup.url.as_str()]);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_token_for_another_resource_is_refused_with_401_and_the_python_client_gets_one_for_this_one()
 {
    audience_binding(Sdk::Python).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_token_for_another_resource_is_refused_with_401_and_the_typescript_client_gets_one_for_this_one()
 {
    audience_binding(Sdk::TypeScript).await;
}

async fn scope_step_up(sdk: Sdk) {
    let setup = start().await;
    let unscoped = setup.client_credentials_token(&setup.url, "").await;
    let refused = setup.call_with_bearer(Some(&unscoped)).await;
    assert_eq!(refused.status(), 403);
    assert_eq!(
        refused.headers()["www-authenticate"],
        format!(
            "Bearer realm=\"meingpt\", error=\"insufficient_scope\", error_description=\"the \
             user lacks the role or team this resource requires\", scope=\"{SCOPE}\", \
             resource_metadata=\"{}\"",
            setup.metadata_url()
        )
        .as_str()
    );

    // A signed-in user whose token lacks the scope: the client asks the
    // authorization server again for the scope the 403 names.
    let Some(outcome) = sdk
        .call(&setup.url, "whoami", &["authorization-code", &unscoped])
        .await
    else {
        return;
    };
    assert_eq!(sub_of(&outcome.expect("whoami answers")), "alice");
    let grants = setup.oauth.oauth_grants();
    assert_eq!(grants.len(), 2, "{grants:?}");
    assert_eq!(grants[1].grant_type, "authorization_code");
    assert_eq!(grants[1].scopes, [SCOPE]);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_token_without_the_tools_scope_gets_403_naming_it_and_the_python_client_steps_up() {
    scope_step_up(Sdk::Python).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_token_without_the_tools_scope_gets_403_naming_it_and_the_typescript_client_steps_up() {
    scope_step_up(Sdk::TypeScript).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn meingpt_tokens_in_x_meingpt_jwt_keep_working_beside_oauth_clients() {
    let setup = start().await;
    let member = setup.meingpt.demo_member().sign();
    let host = setup.base.trim_start_matches("http://");
    let response = initialize_with_host(&setup.url, host, &member).await;
    // No scope asked of meinGPT's users: their organization vouches.
    assert_eq!(response.status(), 200);
    assert!(response.headers().contains_key("mcp-session-id"));
}

//! A real Python MCP server (the official `mcp` package, 2.x: `MCPServer`
//! over Streamable HTTP, `python/server.py`) behind the gateway in proxy mode,
//! driven through the gateway by the official Python client
//! (`python/client.py`) and by rmcp's Rust client, both sending
//! `X-meinGPT-JWT` as meinGPT does.
//!
//! Needs a Python with `mcp` from `python/requirements.txt` at
//! `gateway/tests/rig/python/.venv` (`bash scripts/test.sh` makes it) or
//! named by `MEINGPT_RIG_PYTHON`; `MEINGPT_SKIP_PYTHON_MCP=1` skips.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use http::{HeaderName, HeaderValue};
use meingpt_auth::testing::MockIssuer;
use rmcp::ServiceExt;
use rmcp::model::{CallToolRequestParams, ClientConfig};
use rmcp::service::{ClientInitializeError, RoleClient, RunningService};
use rmcp::transport::StreamableHttpClientTransport;
use rmcp::transport::streamable_http_client::{
    StreamableHttpClientTransportConfig, StreamableHttpError,
};

use crate::common::{Gateway, PATIENCE, Process};

pub(crate) fn python_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/rig/python")
}

/// The Python that has the `mcp` package, or `None` when
/// `MEINGPT_SKIP_PYTHON_MCP=1`; panics with how to install it otherwise.
pub(crate) fn python() -> Option<PathBuf> {
    if std::env::var("MEINGPT_SKIP_PYTHON_MCP").as_deref() == Ok("1") {
        eprintln!("MEINGPT_SKIP_PYTHON_MCP=1: skipping this test");
        return None;
    }
    let python = std::env::var_os("MEINGPT_RIG_PYTHON")
        .map(PathBuf::from)
        .unwrap_or_else(|| python_dir().join(".venv/bin/python"));
    let has_mcp = Command::new(&python)
        .args([
            "-c",
            "import mcp.server.mcpserver, mcp.client.streamable_http",
        ])
        .output()
        .is_ok_and(|output| output.status.success());
    assert!(
        has_mcp,
        "this test needs Python's official MCP SDK at {}: run `bash scripts/test.sh`, or \
         `python3 -m venv gateway/tests/rig/python/.venv && gateway/tests/rig/python/.venv/bin/pip \
         install -r gateway/tests/rig/python/requirements.txt` (or name another Python with \
         MEINGPT_RIG_PYTHON; or set MEINGPT_SKIP_PYTHON_MCP=1 to skip the test)",
        python.display()
    );
    Some(python)
}

/// Starts `python/server.py`: the process and its `host:port`.
pub(crate) fn start_server(python: &Path) -> (Process, String) {
    let mut command = Command::new(python);
    command.arg(python_dir().join("server.py"));
    let mut server = Process::spawn("the Python MCP server", command);
    let line = server.wait_for_line("mcp server listening on http://");
    let upstream = line
        .rsplit("http://")
        .next()
        .and_then(|rest| rest.strip_suffix("/mcp"))
        .unwrap_or_else(|| panic!("no address in {line:?}"))
        .to_owned();
    (server, upstream)
}

/// The Python MCP server and the gateway in front of it: `/mcp` for any
/// signed-in user, `/admin/mcp` (stripped to `/mcp`) for admins only.
struct Rig {
    python: PathBuf,
    gateway: Gateway,
    _server: Process,
}

impl Rig {
    fn start(python: PathBuf, issuer: &MockIssuer) -> Self {
        let (server, upstream) = start_server(&python);
        let routes = format!(
            "[[route]]\nprefix = \"/mcp\"\nupstream = \"http://{upstream}\"\n\n\
             [[route]]\nprefix = \"/admin\"\nupstream = \"http://{upstream}\"\n\
             roles = [\"admin\"]\nstrip_prefix = true\n"
        );
        let gateway = Gateway::start(issuer, &routes);
        Self {
            python,
            gateway,
            _server: server,
        }
    }

    fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.gateway.addr)
    }

    /// Runs the official Python client: `Ok(text)` of the tool's answer,
    /// or `Err(what ended the session)`, e.g. `"401"`.
    async fn python_client(
        &self,
        path: &str,
        tool: &str,
        token: Option<&str>,
    ) -> Result<String, String> {
        let mut command = tokio::process::Command::new(&self.python);
        command
            .arg(python_dir().join("client.py"))
            .arg(self.url(path))
            .arg(tool)
            .args(token)
            .kill_on_drop(true);
        let output = tokio::time::timeout(PATIENCE, command.output())
            .await
            .expect("the Python MCP client did not finish in time")
            .expect("run the Python MCP client");
        let stdout = String::from_utf8_lossy(&output.stdout);
        let last = stdout.lines().last().unwrap_or_default();
        if let Some(text) = last.strip_prefix("result: ") {
            assert!(output.status.success());
            Ok(text.to_owned())
        } else if let Some(error) = last.strip_prefix("error: ") {
            assert!(!output.status.success());
            Err(error.to_owned())
        } else {
            panic!(
                "the Python MCP client printed {stdout:?}, stderr {:?}",
                String::from_utf8_lossy(&output.stderr)
            )
        }
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn the_python_mcp_client_reaches_a_python_mcp_tool_as_the_user_the_gateway_vouched_for() {
    let Some(python) = python() else { return };
    let issuer = MockIssuer::start().await;
    let rig = Rig::start(python, &issuer);
    let member = issuer.demo_member().sign();

    assert_eq!(
        rig.python_client("/mcp", "whoami", Some(&member)).await,
        Ok("member-1".to_owned())
    );
    assert_eq!(
        rig.python_client("/mcp", "role", Some(&member)).await,
        Ok("member".to_owned())
    );
    assert_eq!(
        rig.python_client("/mcp", "token_seen", Some(&member)).await,
        Ok("no".to_owned()),
        "the route does not forward the token"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn without_a_token_the_python_mcp_client_fails_with_401() {
    let Some(python) = python() else { return };
    let issuer = MockIssuer::start().await;
    let rig = Rig::start(python, &issuer);

    assert_eq!(
        rig.python_client("/mcp", "whoami", None).await,
        Err("401".to_owned())
    );
    assert_eq!(
        rig.python_client("/mcp", "whoami", Some("not-a-token"))
            .await,
        Err("401".to_owned())
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn the_admin_only_mcp_route_refuses_a_member_and_serves_an_admin() {
    let Some(python) = python() else { return };
    let issuer = MockIssuer::start().await;
    let rig = Rig::start(python, &issuer);

    assert_eq!(
        rig.python_client("/admin/mcp", "whoami", Some(&issuer.demo_member().sign()))
            .await,
        Err("403".to_owned())
    );
    assert_eq!(
        rig.python_client("/admin/mcp", "whoami", Some(&issuer.demo_admin().sign()))
            .await,
        Ok("admin-1".to_owned())
    );
}

/// Connects rmcp's Streamable HTTP client with `X-meinGPT-JWT: token`.
async fn rmcp_connect(
    url: &str,
    token: Option<&str>,
) -> Result<RunningService<RoleClient, ClientConfig>, ClientInitializeError> {
    let mut headers = HashMap::new();
    if let Some(token) = token {
        headers.insert(
            HeaderName::from_static("x-meingpt-jwt"),
            HeaderValue::from_str(token).expect("a header value"),
        );
    }
    let transport = StreamableHttpClientTransport::from_config(
        StreamableHttpClientTransportConfig::with_uri(url).custom_headers(headers),
    );
    tokio::time::timeout(PATIENCE, ClientConfig::default().serve(transport))
        .await
        .expect("the MCP handshake did not finish in time")
}

#[tokio::test(flavor = "multi_thread")]
async fn rmcps_client_calls_the_python_tool_through_the_gateway_and_gets_401_without_a_token() {
    let Some(python) = python() else { return };
    let issuer = MockIssuer::start().await;
    let rig = Rig::start(python, &issuer);

    let client = rmcp_connect(&rig.url("/mcp"), Some(&issuer.demo_admin().sign()))
        .await
        .expect("rmcp connects through the gateway");
    let result = tokio::time::timeout(
        PATIENCE,
        client.call_tool(CallToolRequestParams::new("whoami")),
    )
    .await
    .expect("whoami answers in time")
    .expect("whoami");
    let text: Vec<_> = result
        .content
        .iter()
        .filter_map(|block| block.as_text().map(|t| t.text.clone()))
        .collect();
    assert_eq!(text, ["admin-1"]);
    let _ = client.cancel().await;

    let error = rmcp_connect(&rig.url("/mcp"), None)
        .await
        .expect_err("no token, no session");
    let ClientInitializeError::TransportError { error, .. } = &error else {
        panic!("expected a transport error, got {error:?}");
    };
    match error
        .error
        .downcast_ref::<StreamableHttpError<reqwest::Error>>()
    {
        Some(StreamableHttpError::AuthRequired(required)) => {
            assert!(
                required.www_authenticate_header.starts_with("Bearer"),
                "{}",
                required.www_authenticate_header
            );
        }
        _ => panic!("expected 401 with a challenge, got {error:?}"),
    }
}

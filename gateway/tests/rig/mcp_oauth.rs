//! MCP authorization through the gateway: the rig's Python MCP server
//! (`python/server.py`, the official SDK's `MCPServer`, which knows nothing
//! of OAuth) behind a route with `[route.protected_resource]`, and the
//! official Python SDK's OAuth client (`python/oauth_client.py`,
//! `OAuthClientProvider`) whose only input is the gateway's URL. It learns
//! where to sign in from the gateway's `401`, finds the test kit's
//! `MockIssuer` as the OAuth authorization server, gets a token and calls
//! the tool as its user. The gateway accepts meinGPT's tokens beside those.
//!
//! Needs the Python venv of `mcp.rs` (`bash scripts/test.sh` makes it);
//! `MEINGPT_SKIP_PYTHON_MCP=1` skips.

use std::path::PathBuf;

use meingpt_auth::testing::{MockIssuer, OAuthServer};
use serde_json::{Value, json};

use crate::common::{Gateway, PATIENCE, Process, free_port};
use crate::mcp::{python, python_dir, start_server};

/// The scope the MCP route asks of OAuth clients.
const SCOPE: &str = "mcp:tools";

/// meinGPT, an OAuth authorization server, the Python MCP server and the
/// gateway: `/mcp` and `/team/mcp` (stripped to `/mcp`), two protected
/// resources on the same upstream.
struct Setup {
    python: PathBuf,
    meingpt: MockIssuer,
    oauth: MockIssuer,
    base: String,
    gateway: Gateway,
    server: Process,
}

async fn start() -> Option<Setup> {
    let python = python()?;
    let meingpt = MockIssuer::start().await;
    let oauth = MockIssuer::for_organization("oauth").await;
    oauth.serve_oauth(
        OAuthServer::new()
            .client("ci-bot", "s3cret", [SCOPE])
            .dynamic_registration(true)
            .scopes_supported([SCOPE])
            .user("alice"),
    );
    let (server, upstream) = start_server(&python);
    let port = free_port();
    let base = format!("http://127.0.0.1:{port}");
    let config = format!(
        "listen = \"127.0.0.1:{port}\"\n\n\
         [[route]]\nprefix = \"/mcp\"\nupstream = \"http://{upstream}\"\n\
         [route.protected_resource]\nresource = \"{base}/mcp\"\nscopes = [\"{SCOPE}\"]\n\
         resource_name = \"Rig tools\"\n\n\
         [[route]]\nprefix = \"/team\"\nupstream = \"http://{upstream}\"\nstrip_prefix = true\n\
         [route.protected_resource]\nresource = \"{base}/team/mcp\"\n"
    );
    // The OAuth issuer accepts tokens for either resource; each route
    // accepts only its own.
    let audiences = format!("{base}/mcp,{base}/team/mcp");
    let gateway = Gateway::start_with(
        &config,
        &[
            ("MEINGPT_ORG_ID", meingpt.organization()),
            ("MEINGPT_ISSUER", meingpt.issuer()),
            ("AUTH_TYPE", "jwt_oidc"),
            ("JWT_ISS", oauth.issuer()),
            ("JWT_AUD", &audiences),
        ],
    );
    Some(Setup {
        python,
        meingpt,
        oauth,
        base,
        gateway,
        server,
    })
}

impl Setup {
    fn url(&self) -> String {
        format!("{}/mcp", self.base)
    }

    fn metadata_url(&self) -> String {
        format!("{}/.well-known/oauth-protected-resource/mcp", self.base)
    }

    /// A `tools/list` call by hand to `path` with `Authorization: Bearer token`.
    async fn call_with_bearer(&self, path: &str, token: Option<&str>) -> reqwest::Response {
        let mut request = reqwest::Client::new()
            .post(format!("{}{path}", self.base))
            .header("content-type", "application/json")
            .header("accept", "application/json, text/event-stream")
            .body(r#"{"jsonrpc":"2.0","id":1,"method":"tools/list"}"#)
            .timeout(PATIENCE);
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        request.send().await.unwrap()
    }

    /// An access token of the authorization server for `resource` with
    /// `scope`, as a client would get it.
    async fn client_credentials_token(&self, resource: &str, scope: &str) -> String {
        let answer: Value = reqwest::Client::new()
            .post(format!("{}/oauth/token", self.oauth.issuer()))
            .basic_auth("ci-bot", Some("s3cret"))
            .header("content-type", "application/x-www-form-urlencoded")
            .body(format!(
                "grant_type=client_credentials&resource={}&scope={}",
                form_value(resource),
                form_value(scope)
            ))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        answer["access_token"].as_str().expect("a token").to_owned()
    }

    /// Runs the official Python SDK's OAuth client (`oauth_client.py URL
    /// whoami FLOW…`) against the gateway's `/mcp`: `Ok(text)` of the
    /// tool's answer, `Err(what ended it)`.
    async fn python_client(&self, flow: &[&str]) -> Result<String, String> {
        let mut command = tokio::process::Command::new(&self.python);
        command
            .arg(python_dir().join("oauth_client.py"))
            .arg(self.url())
            .arg("whoami")
            .args(flow)
            .kill_on_drop(true);
        let output = tokio::time::timeout(PATIENCE * 3, command.output())
            .await
            .expect("the Python MCP client did not finish in time")
            .expect("run the Python MCP client");
        let stdout = String::from_utf8_lossy(&output.stdout);
        let last = stdout.lines().last().unwrap_or_default();
        let outcome = if let Some(text) = last.strip_prefix("result: ") {
            Ok(text.to_owned())
        } else if let Some(error) = last.strip_prefix("error: ") {
            Err(error.to_owned())
        } else {
            panic!(
                "the Python MCP client printed {stdout:?}, stderr {:?}",
                String::from_utf8_lossy(&output.stderr)
            )
        };
        assert_eq!(output.status.success(), outcome.is_ok(), "{outcome:?}");
        if outcome.is_err() {
            // Shown when the test fails.
            eprintln!(
                "the Python MCP client's stderr:\n{}\nthe gateway's log:\n{}\nthe Python MCP server's:\n{}",
                String::from_utf8_lossy(&output.stderr),
                self.gateway.process.output(),
                self.server.output(),
            );
        }
        outcome
    }
}

fn form_value(value: &str) -> String {
    percent_encoding::utf8_percent_encode(value, percent_encoding::NON_ALPHANUMERIC).to_string()
}

#[tokio::test(flavor = "multi_thread")]
async fn the_gateway_publishes_the_routes_metadata_and_names_it_in_the_routes_401() {
    let Some(setup) = start().await else { return };
    let refused = setup.call_with_bearer("/mcp", None).await;
    assert_eq!(refused.status(), 401);
    assert_eq!(
        refused.headers()["www-authenticate"],
        format!(
            r#"Bearer realm="meingpt", resource_metadata="{}""#,
            setup.metadata_url()
        )
        .as_str()
    );
    let team = setup.call_with_bearer("/team/mcp", None).await;
    assert_eq!(
        team.headers()["www-authenticate"],
        format!(
            r#"Bearer realm="meingpt", resource_metadata="{}/.well-known/oauth-protected-resource/team/mcp""#,
            setup.base
        )
        .as_str()
    );

    // Public, without a token, at the path-suffixed URL and (for the first
    // resource) at the root.
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
                "resource": setup.url(),
                // The OAuth authorization server first: MCP clients take the
                // first one.
                "authorization_servers": [setup.oauth.issuer(), setup.meingpt.issuer()],
                "scopes_supported": [SCOPE],
                "bearer_methods_supported": ["header"],
                "resource_name": "Rig tools",
            })
        );
    }
    let team: Value = reqwest::get(format!(
        "{}/.well-known/oauth-protected-resource/team/mcp",
        setup.base
    ))
    .await
    .unwrap()
    .json()
    .await
    .unwrap();
    assert_eq!(team["resource"], format!("{}/team/mcp", setup.base));
}

#[tokio::test(flavor = "multi_thread")]
async fn the_python_sdk_client_signs_in_through_the_gateway_with_client_credentials() {
    let Some(setup) = start().await else { return };
    let outcome = setup
        .python_client(&[
            "client-credentials",
            "ci-bot",
            "s3cret",
            setup.oauth.issuer(),
        ])
        .await;
    // The Python server read the user from the gateway's identity headers.
    assert_eq!(outcome, Ok("ci-bot".to_owned()));
    let grants = setup.oauth.oauth_grants();
    assert_eq!(grants.len(), 1, "{grants:?}");
    assert_eq!(grants[0].grant_type, "client_credentials");
    assert_eq!(grants[0].resources, [setup.url()]);
    assert_eq!(grants[0].scopes, [SCOPE]);
}

#[tokio::test(flavor = "multi_thread")]
async fn the_python_sdk_client_signs_in_through_the_gateway_with_an_authorization_code_and_pkce() {
    let Some(setup) = start().await else { return };
    let outcome = setup.python_client(&["authorization-code"]).await;
    assert_eq!(outcome, Ok("alice".to_owned()));
    let grants = setup.oauth.oauth_grants();
    assert_eq!(grants.len(), 1, "{grants:?}");
    assert_eq!(grants[0].grant_type, "authorization_code");
    assert_eq!(grants[0].sub, "alice");
    assert_eq!(grants[0].resources, [setup.url()]);
    assert_eq!(
        grants[0].scopes,
        [SCOPE],
        "the scope the metadata publishes"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_token_for_another_resource_gets_401_and_the_python_client_gets_one_for_this_route() {
    let Some(setup) = start().await else { return };
    let challenge = format!(
        "Bearer realm=\"meingpt\", error=\"invalid_token\", error_description=\"the token is \
         meant for another audience\", resource_metadata=\"{}\"",
        setup.metadata_url()
    );
    // Another service of the same authorization server: the issuer's
    // audiences refuse it.
    let elsewhere = setup
        .client_credentials_token("https://other.example.com/mcp", SCOPE)
        .await;
    let refused = setup.call_with_bearer("/mcp", Some(&elsewhere)).await;
    assert_eq!(refused.status(), 401);
    assert_eq!(refused.headers()["www-authenticate"], challenge.as_str());
    // Another route of this gateway: the issuer accepts it, the route not.
    let team = format!("{}/team/mcp", setup.base);
    let other_route = setup.client_credentials_token(&team, SCOPE).await;
    assert_eq!(
        setup
            .call_with_bearer("/team/mcp", Some(&other_route))
            .await
            .status(),
        200,
        "the token serves the route it was issued for"
    );
    let refused = setup.call_with_bearer("/mcp", Some(&other_route)).await;
    assert_eq!(refused.status(), 401);
    assert_eq!(refused.headers()["www-authenticate"], challenge.as_str());

    // The client holding that token is refused and signs in again for
    // this resource.
    let outcome = setup
        .python_client(&[
            "client-credentials",
            "ci-bot",
            "s3cret",
            setup.oauth.issuer(),
            &other_route,
        ])
        .await;
    assert_eq!(outcome, Ok("ci-bot".to_owned()));
    let grants = setup.oauth.oauth_grants();
    assert_eq!(grants.len(), 3, "{grants:?}");
    assert_eq!(grants[2].resources, [setup.url()]);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_token_without_the_scope_gets_403_naming_it_and_the_python_client_steps_up() {
    let Some(setup) = start().await else { return };
    let unscoped = setup.client_credentials_token(&setup.url(), "").await;
    let refused = setup.call_with_bearer("/mcp", Some(&unscoped)).await;
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
    let outcome = setup
        .python_client(&["authorization-code", &unscoped])
        .await;
    assert_eq!(outcome, Ok("alice".to_owned()));
    let grants = setup.oauth.oauth_grants();
    assert_eq!(grants.len(), 2, "{grants:?}");
    assert_eq!(grants[1].grant_type, "authorization_code");
    assert_eq!(grants[1].scopes, [SCOPE]);
}

#[tokio::test(flavor = "multi_thread")]
async fn meingpt_tokens_keep_working_on_the_protected_route_without_scopes() {
    let Some(setup) = start().await else { return };
    let member = setup.meingpt.demo_member().sign();
    let mut command = tokio::process::Command::new(&setup.python);
    command
        .arg(python_dir().join("client.py"))
        .arg(setup.url())
        .arg("whoami")
        .arg(&member)
        .kill_on_drop(true);
    let output = tokio::time::timeout(PATIENCE, command.output())
        .await
        .expect("the Python MCP client did not finish in time")
        .expect("run the Python MCP client");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert_eq!(stdout.lines().last(), Some("result: member-1"), "{stdout}");
}

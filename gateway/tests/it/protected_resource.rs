//! `[route.protected_resource]` and `MCP_RESOURCE_URL`: a route that OAuth
//! clients (MCP clients) sign in to by themselves: the metadata document,
//! the challenges that name it and the scopes, the audience binding, in
//! proxy mode, in forward auth and in the environment-only mode; and the
//! configurations that cannot work. The official MCP SDK client through
//! the gateway is in `tests/rig/mcp_oauth.rs`.

use meingpt_auth::testing::MockIssuer;
use serde_json::{Value, json};

use crate::common::binary::{Running, run_to_end};
use crate::common::{Upstream, get, temp_dir};

const RESOURCE: &str = "https://gateway.example.com/mcp";
const TEAM_RESOURCE: &str = "https://gateway.example.com/team/mcp";
const METADATA: &str = "https://gateway.example.com/.well-known/oauth-protected-resource/mcp";
const SCOPE: &str = "mcp:tools";

fn write(text: &str) -> String {
    let path = temp_dir("resource").join("gateway.toml");
    std::fs::write(&path, text).unwrap();
    path.display().to_string()
}

/// meinGPT, an OpenID Connect issuer (the OAuth authorization server)
/// accepting tokens for both resources, an upstream, and the gateway with
/// `/mcp` and `/team` as protected resources.
struct Setup {
    meingpt: MockIssuer,
    oauth: MockIssuer,
    upstream: Upstream,
    base: String,
    _gateway: Running,
}

async fn start() -> Setup {
    let meingpt = MockIssuer::start().await;
    let oauth = MockIssuer::for_organization("oauth").await;
    let upstream = Upstream::start().await;
    let config = format!(
        "[[route]]\nprefix = \"/mcp\"\nupstream = \"{url}\"\n\
         [route.protected_resource]\nresource = \"{RESOURCE}\"\nscopes = [\"{SCOPE}\"]\n\n\
         [[route]]\nprefix = \"/team\"\nupstream = \"{url}\"\n\
         [route.protected_resource]\nresource = \"{TEAM_RESOURCE}\"\n",
        url = upstream.url()
    );
    let path = write(&config);
    let audiences = format!("{RESOURCE},{TEAM_RESOURCE}");
    let (gateway, base) = Running::start(
        &["--config", &path],
        &[
            ("LISTEN_ADDR", "127.0.0.1:0"),
            ("MEINGPT_ORG_ID", meingpt.organization()),
            ("MEINGPT_ISSUER", meingpt.issuer()),
            ("AUTH_TYPE", "jwt_oidc"),
            ("JWT_ISS", oauth.issuer()),
            ("JWT_AUD", &audiences),
        ],
    );
    Setup {
        meingpt,
        oauth,
        upstream,
        base: base.trim_end_matches('/').to_owned(),
        _gateway: gateway,
    }
}

impl Setup {
    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// An access token of the OAuth issuer for `aud`, granting `scope`.
    fn token(&self, aud: &str, scope: &str) -> String {
        self.oauth
            .token()
            .sub("ci-bot")
            .audience(aud)
            .claim("scope", scope)
            .sign()
    }
}

fn bearer(token: &str) -> String {
    format!("Bearer {token}")
}

fn wrong_audience(metadata: &str) -> String {
    format!(
        "Bearer realm=\"meingpt\", error=\"invalid_token\", error_description=\"the token is \
         meant for another audience\", resource_metadata=\"{metadata}\""
    )
}

fn insufficient_scope() -> String {
    format!(
        "Bearer realm=\"meingpt\", error=\"insufficient_scope\", error_description=\"the user \
         lacks the role or team this resource requires\", scope=\"{SCOPE}\", \
         resource_metadata=\"{METADATA}\""
    )
}

#[tokio::test]
async fn a_protected_route_publishes_its_metadata_names_it_and_its_scopes_and_binds_tokens() {
    let setup = start().await;

    for path in [
        "/.well-known/oauth-protected-resource/mcp",
        "/.well-known/oauth-protected-resource",
    ] {
        let document = get(&setup.url(path), &[]).await;
        assert_eq!(document.status, 200, "{path}");
        assert_eq!(
            document.header("cache-control"),
            Some("public, max-age=3600")
        );
        assert_eq!(
            document.json(),
            json!({
                "resource": RESOURCE,
                "authorization_servers": [setup.oauth.issuer(), setup.meingpt.issuer()],
                "scopes_supported": [SCOPE],
                "bearer_methods_supported": ["header"],
            })
        );
    }
    let team = get(
        &setup.url("/.well-known/oauth-protected-resource/team/mcp"),
        &[],
    )
    .await;
    assert_eq!(team.json()["resource"], TEAM_RESOURCE);
    assert!(team.json().get("scopes_supported").is_none());

    let missing = get(&setup.url("/mcp"), &[]).await;
    assert_eq!(missing.status, 401);
    assert_eq!(
        missing.header("www-authenticate"),
        Some(format!("Bearer realm=\"meingpt\", resource_metadata=\"{METADATA}\"").as_str())
    );

    // Issued for the other route: the issuer accepts it, this route not.
    let for_team = setup.token(TEAM_RESOURCE, SCOPE);
    let refused = get(&setup.url("/mcp"), &[("authorization", &bearer(&for_team))]).await;
    assert_eq!(refused.status, 401);
    assert_eq!(
        refused.header("www-authenticate"),
        Some(wrong_audience(METADATA).as_str())
    );
    let served = get(
        &setup.url("/team/x"),
        &[("authorization", &bearer(&for_team))],
    )
    .await;
    assert_eq!(served.status, 200);
    // Issued for another service of the authorization server.
    let elsewhere = setup.token("https://other.example.com/mcp", SCOPE);
    let refused = get(
        &setup.url("/mcp"),
        &[("authorization", &bearer(&elsewhere))],
    )
    .await;
    assert_eq!(refused.status, 401);
    assert_eq!(
        refused.header("www-authenticate"),
        Some(wrong_audience(METADATA).as_str())
    );

    let unscoped = setup.token(RESOURCE, "profile");
    let refused = get(&setup.url("/mcp"), &[("authorization", &bearer(&unscoped))]).await;
    assert_eq!(refused.status, 403);
    assert_eq!(
        refused.header("www-authenticate"),
        Some(insufficient_scope().as_str())
    );

    let requests = setup.upstream.count();
    let scoped = setup.token(RESOURCE, &format!("profile {SCOPE}"));
    let served = get(&setup.url("/mcp"), &[("authorization", &bearer(&scoped))]).await;
    assert_eq!(served.status, 200);
    assert_eq!(setup.upstream.count(), requests + 1);
    let received = setup.upstream.last();
    assert_eq!(received.header("x-auth-request-user"), Some("ci-bot"));
    assert_eq!(
        received.header("authorization"),
        None,
        "the token is not passed on"
    );

    // meinGPT's users: their organization vouches, no scope asked.
    let member = setup.meingpt.demo_member().sign();
    let served = get(&setup.url("/mcp"), &[("x-meingpt-jwt", &member)]).await;
    assert_eq!(served.status, 200);
    assert_eq!(
        setup.upstream.last().header("x-auth-request-user"),
        Some("member-1")
    );
}

#[tokio::test]
async fn forward_auth_for_a_protected_route_binds_and_names_the_resource_as_the_proxy_does() {
    let setup = start().await;
    let ask = |token: Option<String>| {
        let url = setup.url("/_meingpt/auth");
        async move {
            let authorization = token.map(|token| bearer(&token));
            let mut headers = vec![("x-original-uri", "/mcp")];
            if let Some(authorization) = &authorization {
                headers.push(("authorization", authorization));
            }
            get(&url, &headers).await
        }
    };

    let missing = ask(None).await;
    assert_eq!(missing.status, 401);
    assert_eq!(
        missing.header("www-authenticate"),
        Some(format!("Bearer realm=\"meingpt\", resource_metadata=\"{METADATA}\"").as_str())
    );
    let refused = ask(Some(setup.token(TEAM_RESOURCE, SCOPE))).await;
    assert_eq!(refused.status, 401);
    assert_eq!(
        refused.header("www-authenticate"),
        Some(wrong_audience(METADATA).as_str())
    );
    let refused = ask(Some(setup.token(RESOURCE, "profile"))).await;
    assert_eq!(refused.status, 403);
    assert_eq!(
        refused.header("www-authenticate"),
        Some(insufficient_scope().as_str())
    );
    let allowed = ask(Some(setup.token(RESOURCE, SCOPE))).await;
    assert_eq!(allowed.status, 200);
    assert_eq!(allowed.header("x-auth-request-user"), Some("ci-bot"));
}

#[tokio::test]
async fn mcp_resource_url_makes_the_environment_only_route_that_resource() {
    let oauth = MockIssuer::for_organization("oauth").await;
    let upstream = Upstream::start().await;
    let (_gateway, base) = Running::start(
        &[],
        &[
            ("LISTEN_ADDR", "127.0.0.1:0"),
            ("GATEWAY_UPSTREAM", &upstream.url()),
            ("AUTH_TYPE", "jwt_oidc"),
            ("JWT_ISS", oauth.issuer()),
            ("MCP_RESOURCE_URL", RESOURCE),
            ("MCP_SCOPES", SCOPE),
        ],
    );
    let url = |path: &str| format!("{}{path}", base.trim_end_matches('/'));

    let document = get(&url("/.well-known/oauth-protected-resource/mcp"), &[]).await;
    assert_eq!(document.status, 200);
    let document: Value = document.json();
    assert_eq!(document["resource"], RESOURCE);
    assert_eq!(document["authorization_servers"], json!([oauth.issuer()]));
    assert_eq!(document["scopes_supported"], json!([SCOPE]));

    let missing = get(&url("/mcp"), &[]).await;
    assert_eq!(missing.status, 401);
    assert_eq!(
        missing.header("www-authenticate"),
        Some(format!("Bearer realm=\"meingpt\", resource_metadata=\"{METADATA}\"").as_str())
    );
    // Without JWT_AUD the issuer is bound to the resource.
    let token = |aud: &str, scope: &str| oauth.token().audience(aud).claim("scope", scope).sign();
    let elsewhere = get(
        &url("/mcp"),
        &[(
            "authorization",
            &bearer(&token("https://other.example.com/mcp", SCOPE)),
        )],
    )
    .await;
    assert_eq!(elsewhere.status, 401);
    assert_eq!(
        elsewhere.header("www-authenticate"),
        Some(wrong_audience(METADATA).as_str())
    );
    let unscoped = get(
        &url("/mcp"),
        &[("authorization", &bearer(&token(RESOURCE, "profile")))],
    )
    .await;
    assert_eq!(unscoped.status, 403);
    assert_eq!(
        unscoped.header("www-authenticate"),
        Some(insufficient_scope().as_str())
    );
    let served = get(
        &url("/mcp"),
        &[("authorization", &bearer(&token(RESOURCE, SCOPE)))],
    )
    .await;
    assert_eq!(served.status, 200);
    assert_eq!(upstream.count(), 1);
}

/// `check` on `text` with `vars`: the exit code and stderr.
fn check(text: &str, vars: &[(&str, &str)]) -> (i32, String) {
    let path = write(text);
    let (status, _stdout, stderr) = run_to_end(&["check", "--config", &path], vars);
    (status.code().expect("exited"), stderr)
}

#[test]
fn protected_resources_that_cannot_work_are_refused_naming_the_key() {
    let oidc = [
        ("LISTEN_ADDR", "127.0.0.1:0"),
        ("AUTH_TYPE", "jwt_oidc"),
        ("JWT_ISS", "https://id.example.com"),
        ("JWT_AUD", RESOURCE),
    ];
    let route = |extra: &str, table: &str| {
        format!(
            "[[route]]\nprefix = \"/mcp\"\nupstream = \"http://127.0.0.1:9000\"\n{extra}\
             [route.protected_resource]\n{table}"
        )
    };
    let (code, stderr) = check(&route("", &format!("resource = \"{RESOURCE}\"\n")), &oidc);
    assert_eq!(code, 0, "{stderr}");
    for (text, vars, key) in [
        (
            route("public = true\n", &format!("resource = \"{RESOURCE}\"\n")),
            &oidc[..],
            "route[0].protected_resource: a public route asks for no token",
        ),
        (
            route("embed = true\n", &format!("resource = \"{RESOURCE}\"\n")),
            &oidc[..],
            "route[0].protected_resource: an embed route is a web app framed by meinGPT",
        ),
        (
            route("", "resource = \"http://gateway.example.com/mcp\"\n"),
            &oidc[..],
            "route[0].protected_resource.resource: plain http:// is only allowed for loopback",
        ),
        (
            route(
                "",
                &format!("resource = \"{RESOURCE}\"\nscopes = [\"a b\"]\n"),
            ),
            &oidc[..],
            "route[0].protected_resource.scopes: ",
        ),
        (
            route("", &format!("resource = \"{RESOURCE}\"\nscope = [\"x\"]\n")),
            &oidc[..],
            "route[0].protected_resource.scope: unknown field",
        ),
        (
            route("", &format!("resource = \"{RESOURCE}\"\n")),
            &[("LISTEN_ADDR", "127.0.0.1:0")][..],
            "route[0].protected_resource: needs an issuer OAuth clients can sign in with",
        ),
    ] {
        let (code, stderr) = check(&text, vars);
        assert_eq!(code, 2, "{text}\n{stderr}");
        assert!(
            stderr.starts_with(&format!("error: {key}")),
            "{key}: {stderr}"
        );
        assert_eq!(stderr.trim_end().lines().count(), 1, "{stderr}");
    }
}

#[tokio::test]
async fn a_refusal_before_the_request_body_arrived_says_the_connection_closes() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    let setup = start().await;
    let addr = setup.base.trim_start_matches("http://").to_owned();
    let mut stream = tokio::net::TcpStream::connect(&addr).await.unwrap();
    // An MCP client's first POST, its body sent after its head: the gateway
    // refuses it before the body arrives.
    let body = r#"{"jsonrpc":"2.0","id":1,"method":"initialize"}"#;
    let head = format!(
        "POST /mcp HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/json\r\n\
         Content-Length: {}\r\n\r\n",
        body.len()
    );
    stream.write_all(head.as_bytes()).await.unwrap();
    let mut answer = Vec::new();
    let mut buffer = [0u8; 4096];
    while !String::from_utf8_lossy(&answer).contains("\r\n\r\n") {
        let read = tokio::time::timeout(crate::common::PATIENCE, stream.read(&mut buffer))
            .await
            .expect("the gateway answers before the body")
            .unwrap();
        assert!(read > 0, "closed before answering");
        answer.extend_from_slice(&buffer[..read]);
    }
    let answer = String::from_utf8_lossy(&answer).to_lowercase();
    assert!(answer.starts_with("http/1.1 401"), "{answer}");
    // Without it the client would send its next request into a connection
    // the gateway closes.
    assert!(answer.contains("\r\nconnection: close\r\n"), "{answer}");
    let _ = stream.write_all(body.as_bytes()).await;

    // A refused request without a body keeps its connection.
    let refused = get(&setup.url("/mcp"), &[]).await;
    assert_eq!(refused.status, 401);
    assert_eq!(refused.header("connection"), None);
}

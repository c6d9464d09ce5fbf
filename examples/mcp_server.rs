//! A custom MCP server for meinGPT, built with the official Rust MCP SDK
//! (`rmcp`, Streamable HTTP), behind `meingpt-auth`.
//!
//! ```text
//! cargo run --example mcp_server
//! ```
//!
//! meinGPT calls a custom MCP server with the signed-in user's token in the
//! `X-meinGPT-JWT` header on every request. The auth layer wraps the whole
//! MCP endpoint, so a call without a valid token never reaches the MCP
//! server (`401` with `WWW-Authenticate: Bearer realm="meingpt"`), and every
//! tool can read the user it is serving:
//!
//! - `whoami` answers with the forwarded user: sub, username, role, teams;
//! - `admin_report` is for organization admins only, and shows a role check
//!   inside a tool: anyone else gets a tool error that says so.
//!
//! rmcp hands each tool the HTTP request it came with (its
//! `http::request::Parts`, with the extensions the auth layer filled in), so
//! a tool takes `Extension(parts): Extension<http::request::Parts>` and finds
//! the `MeinGptUser` in `parts.extensions`. The user is read per request,
//! never remembered from the MCP session's `initialize`.
//!
//! **Standard MCP clients** (the official SDKs' clients, IDE agents, desktop
//! assistants) sign in with OAuth instead, as the MCP specification's
//! authorization section describes. Set `MCP_RESOURCE_URL` to the URL they
//! use (such as `https://mcp.example.com/mcp`), `AUTH_TYPE=jwt_oidc` and
//! `JWT_ISS` to the company's identity provider, and optionally
//! `MCP_SCOPES` (such as `mcp:tools`). Then:
//!
//! - the server publishes its protected resource metadata (RFC 9728) at
//!   `/.well-known/oauth-protected-resource/mcp` (and at
//!   `/.well-known/oauth-protected-resource`), naming the identity provider;
//! - every `401` says where: `WWW-Authenticate: Bearer realm="meingpt",
//!   resource_metadata="https://mcp.example.com/.well-known/oauth-protected-resource/mcp"`;
//! - the identity provider's tokens count only when their `aud` is the
//!   resource URL (RFC 8707; unless `JWT_AUD` names the audience instead),
//!   and, with `MCP_SCOPES`, only when they grant those scopes: otherwise
//!   `403` with `scope="mcp:tools"`, so the client asks for them (step-up).
//!   meinGPT's users keep signing in with `X-meinGPT-JWT`, vouched for by
//!   their organization.
//!
//! Configuration is the quickstart's: with nothing configured and a loopback
//! `LISTEN_ADDR` (or `MEINGPT_DEV_ISSUER=1`) it starts an embedded
//! development issuer and prints an admin and a member token
//! (`examples/common/dev_issuer.rs`, not part of the production path); with `MEINGPT_ORG_ID` (and `MEINGPT_ISSUER`, `MEINGPT_JWKS_URL`) or
//! `AUTH_TYPE=jwt_oidc|jwt_local` it verifies real tokens. `LISTEN_ADDR`
//! sets where it listens (default `127.0.0.1:3000`); the MCP endpoint is
//! `/mcp`, and `/health` is public.
//!
//! **Host allow-list.** rmcp's Streamable HTTP server refuses requests whose
//! `Host` header is not in its allow-list (`403 Forbidden: Host header is not
//! allowed`, a defence against DNS rebinding), and the list defaults to
//! `localhost`, `127.0.0.1` and `::1`. Behind a real host name set
//! `MCP_ALLOWED_HOSTS` (comma separated, `host` or `host:port`), for example
//! `MCP_ALLOWED_HOSTS=mcp.example.com`; in your own code that is
//! `StreamableHttpServerConfig::default().with_allowed_hosts(["mcp.example.com"])`.

use std::net::SocketAddr;
use std::process::ExitCode;
use std::sync::Arc;

use axum::Router;
use axum::routing::get;
use meingpt_auth::{GuardLayer, MeinGptAuth, MeinGptUser, ResourceMetadata, Role, require_user};
use rmcp::handler::server::router::tool::ToolRouter;
use rmcp::handler::server::tool::Extension;
use rmcp::model::{CallToolResult, ContentBlock, Implementation, ServerCapabilities, ServerConfig};
use rmcp::transport::streamable_http_server::session::local::LocalSessionManager;
use rmcp::transport::streamable_http_server::{StreamableHttpServerConfig, StreamableHttpService};
use rmcp::{ErrorData, Json, ServerHandler, schemars, tool, tool_handler, tool_router};
use serde::Serialize;
use tokio_util::sync::CancellationToken;
use tracing_subscriber::EnvFilter;

// Development only: the embedded issuer when nothing is configured.
#[path = "common/dev_issuer.rs"]
mod dev_issuer;
use dev_issuer::DevIssuer;

/// The MCP server: two tools that know who is calling.
#[derive(Debug, Clone)]
struct MeinGptTools {
    tool_router: ToolRouter<Self>,
}

/// What `whoami` answers.
#[derive(Debug, Serialize, schemars::JsonSchema)]
struct WhoAmI {
    /// meinGPT's stable user id.
    sub: String,
    /// The user's name, if the token carries one.
    username: Option<String>,
    /// `admin`, `member`, or another role name.
    role: Option<String>,
    /// The teams the user belongs to.
    teams: Vec<TeamInfo>,
}

#[derive(Debug, Serialize, schemars::JsonSchema)]
struct TeamInfo {
    id: String,
    name: String,
}

/// The user the auth layer verified for this very request.
fn caller(parts: &http::request::Parts) -> Result<MeinGptUser, ErrorData> {
    parts
        .extensions
        .get::<MeinGptUser>()
        .cloned()
        .ok_or_else(|| {
            // Only if the router forgot `.layer(auth.layer())`.
            ErrorData::internal_error(
                "no authenticated user: is the meinGPT auth layer applied?",
                None,
            )
        })
}

#[tool_router]
impl MeinGptTools {
    fn new() -> Self {
        Self {
            tool_router: Self::tool_router(),
        }
    }

    #[tool(
        description = "Who am I? The meinGPT user this request comes from: id, name, role and teams."
    )]
    async fn whoami(
        &self,
        Extension(parts): Extension<http::request::Parts>,
    ) -> Result<Json<WhoAmI>, ErrorData> {
        let user = caller(&parts)?;
        Ok(Json(WhoAmI {
            sub: user.sub().to_owned(),
            username: user.username().map(str::to_owned),
            role: user.role().map(|role| role.as_str().to_owned()),
            teams: user
                .teams()
                .iter()
                .map(|team| TeamInfo {
                    id: team.id.clone(),
                    name: team.name.clone(),
                })
                .collect(),
        }))
    }

    #[tool(description = "A report about the organization. Only organization admins may run it.")]
    async fn admin_report(
        &self,
        Extension(parts): Extension<http::request::Parts>,
    ) -> Result<CallToolResult, ErrorData> {
        let user = caller(&parts)?;
        if !user.has_role(&Role::Admin) {
            // A tool error, not a protocol error: the model (and the user)
            // see why the tool did nothing.
            return Ok(CallToolResult::error(vec![ContentBlock::text(
                "admin_report is only for organization admins.",
            )]));
        }
        Ok(CallToolResult::structured(serde_json::json!({
            "organization_id": user.organization_id(),
            "organization_name": user.organization_name(),
            "requested_by": user.sub(),
            "teams_of_requester": user.teams().len(),
        })))
    }
}

#[tool_handler(router = self.tool_router)]
impl ServerHandler for MeinGptTools {
    fn get_info(&self) -> ServerConfig {
        ServerConfig::new(ServerCapabilities::builder().enable_tools().build())
            .with_server_info(Implementation::new(
                "meingpt-auth-mcp-example",
                env!("CARGO_PKG_VERSION"),
            ))
            .with_instructions(
                "Tools that know the meinGPT user calling them: whoami for anyone, \
                 admin_report for organization admins.",
            )
    }
}

/// The MCP endpoint at `/mcp` behind the auth layer, a public `/health`,
/// and, with `MCP_RESOURCE_URL`, the public protected resource metadata.
fn app(auth: &MeinGptAuth, mcp: StreamableHttpServerConfig) -> Router {
    let service: StreamableHttpService<MeinGptTools, LocalSessionManager> =
        StreamableHttpService::new(|| Ok(MeinGptTools::new()), Arc::default(), mcp);
    let mut tools = Router::new().nest_service("/mcp", service);
    if let Some(metadata) = auth.resource_metadata() {
        tools = tools.route_layer(resource_scopes(metadata));
    }
    let app = tools
        .layer(auth.layer())
        .route("/health", get(|| async { "ok\n" }));
    match auth.resource_metadata() {
        Some(metadata) => app.merge(metadata.router()),
        None => app,
    }
}

/// OAuth clients' tokens must grant the scopes the resource publishes
/// (`MCP_SCOPES`); a refusal names them, so the client asks for them.
/// meinGPT's users are vouched for by their organization (their tokens
/// carry no scopes).
fn resource_scopes(metadata: &ResourceMetadata) -> GuardLayer {
    let scopes = metadata.scopes_supported().to_vec();
    require_user(move |user| user.is_meingpt() || scopes.iter().all(|scope| user.has_scope(scope)))
        .challenge_scope(metadata.scopes_supported())
}

fn fail(message: impl std::fmt::Display) -> ExitCode {
    eprintln!("error: {message}");
    ExitCode::FAILURE
}

#[tokio::main]
async fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .init();

    let listen = std::env::var("LISTEN_ADDR").unwrap_or_else(|_| "127.0.0.1:3000".to_owned());
    let addr: SocketAddr = match listen.parse() {
        Ok(addr) => addr,
        Err(_) => {
            return fail(format!(
                "LISTEN_ADDR is invalid: {listen:?} is not a host:port address"
            ));
        }
    };

    let dev_issuer = match DevIssuer::start_unless_configured(addr, &["MCP_ALLOWED_HOSTS"]).await {
        Ok(dev_issuer) => dev_issuer,
        Err(error) => return fail(error),
    };
    // rmcp's Host allow-list: loopback by default; a real host name must be listed.
    let shutdown = CancellationToken::new();
    let mut mcp =
        StreamableHttpServerConfig::default().with_cancellation_token(shutdown.child_token());
    match std::env::var("MCP_ALLOWED_HOSTS") {
        Ok(hosts) => {
            let hosts: Vec<String> = hosts
                .split(',')
                .map(str::trim)
                .filter(|host| !host.is_empty())
                .map(str::to_owned)
                .collect();
            if hosts.is_empty() {
                return fail("MCP_ALLOWED_HOSTS is invalid: it lists no host");
            }
            mcp = mcp.with_allowed_hosts(hosts);
        }
        Err(_) if !addr.ip().is_loopback() => eprintln!(
            "warning: listening on {addr}, but MCP requests are only accepted with a loopback \
             Host header; set MCP_ALLOWED_HOSTS to the host name clients use"
        ),
        Err(_) => {}
    }

    let auth = match &dev_issuer {
        None => MeinGptAuth::from_env(),
        Some(dev_issuer) => dev_issuer.auth(),
    };
    let auth = match auth {
        Ok(auth) => auth,
        Err(error) => return fail(error),
    };
    if dev_issuer.is_none()
        && let Err(error) = auth.preload().await
    {
        // Not fatal: the issuer may come up later; requests get 503 until then.
        eprintln!("warning: {error}");
    }

    let listener = match tokio::net::TcpListener::bind(addr).await {
        Ok(listener) => listener,
        Err(error) => return fail(format!("LISTEN_ADDR {addr}: cannot listen: {error}")),
    };
    let base = format!("http://{}", listener.local_addr().unwrap_or(addr));
    println!("meingpt-auth MCP server listening on {base}/mcp");
    if let Some(metadata) = auth.resource_metadata() {
        println!(
            "OAuth clients sign in for {} (metadata: {})",
            metadata.resource(),
            metadata.metadata_url()
        );
    }

    match &dev_issuer {
        Some(issuer) => {
            let admin = issuer.admin_token();
            let member = issuer.member_token();
            println!(
                "No configuration set: using {}. Its tokens are valid for one hour.\n",
                issuer.describe()
            );
            println!("ADMIN={admin}");
            println!("MEMBER={member}\n");
            println!(
                "Connect an MCP client to {base}/mcp with the header \"X-meinGPT-JWT: $MEMBER\","
            );
            println!("or start a session by hand:");
            println!(
                "curl -i -X POST {base}/mcp -H \"X-meinGPT-JWT: $MEMBER\" \
                 -H 'Content-Type: application/json' -H 'Accept: application/json, text/event-stream' \
                 -d '{{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"initialize\",\"params\":\
                 {{\"protocolVersion\":\"2025-06-18\",\"capabilities\":{{}},\
                 \"clientInfo\":{{\"name\":\"curl\",\"version\":\"1\"}}}}}}'"
            );
        }
        None => println!("Verifying tokens from the configured issuer."),
    }

    let stop = shutdown.clone();
    let signal = async move {
        let _ = tokio::signal::ctrl_c().await;
        stop.cancel();
    };
    if let Err(error) = axum::serve(listener, app(&auth, mcp))
        .with_graceful_shutdown(signal)
        .await
    {
        return fail(format!("server error: {error}"));
    }
    shutdown.cancel();
    ExitCode::SUCCESS
}

//! The first thing to run: an axum service behind `meingpt-auth`.
//!
//! ```text
//! cargo run --example quickstart
//! ```
//!
//! Configured from the environment, it verifies real tokens: meinGPT
//! (`MEINGPT_ORG_ID`, `MEINGPT_ISSUER`, `MEINGPT_JWKS_URL`), any OpenID
//! Connect issuer (`AUTH_TYPE=jwt_oidc`, `JWT_ISS`, `JWT_AUD`) or a static
//! key (`AUTH_TYPE=jwt_local`, `JWT_ISS`, `JWT_AUD`, `JWT_ALG`,
//! `JWT_DECODE_KEY_B64`), or meinGPT and one of the others together
//! (`MEINGPT_ORG_ID` beside `AUTH_TYPE`): tokens from either are accepted.
//! Users without meinGPT claims get empty role and teams.
//! `LISTEN_ADDR` sets where it listens (default `127.0.0.1:3000`).
//!
//! With nothing configured and a loopback `LISTEN_ADDR` (or with
//! `MEINGPT_DEV_ISSUER=1`), it starts an embedded development issuer and
//! prints curl commands with an admin and a member token; that fallback
//! lives in `examples/common/dev_issuer.rs`, apart from the production path
//! (`MeinGptAuth::from_env()`), and stays out of a real service.
//!
//! Routes: `GET /health` (public), `GET /me` (any user), `GET /ping` (any
//! user; answers `pong`: is my token accepted?), `GET /admin` (role admin),
//! `GET /engineering` (members of the team whose id is
//! [`ENGINEERING_TEAM_ID`]; the development issuer's admin is one).

use std::net::SocketAddr;
use std::process::ExitCode;

use axum::routing::get;
use axum::{Json, Router};
use meingpt_auth::{MeinGptAuth, MeinGptUser, Role, require_role, require_team_id};
use tracing_subscriber::EnvFilter;

// Development only: the embedded issuer when nothing is configured.
#[path = "common/dev_issuer.rs"]
mod dev_issuer;
use dev_issuer::DevIssuer;

/// The team `/engineering` admits, by id: ids are unique and survive a
/// rename, while two teams may share a name and any name can change. Put
/// your own team's id here (meinGPT sends it in the token's `teams` claim).
const ENGINEERING_TEAM_ID: &str = "team-eng";

async fn me(user: MeinGptUser) -> Json<MeinGptUser> {
    Json(user)
}

async fn admin(user: MeinGptUser) -> String {
    format!("Welcome, admin {}.\n", user.sub())
}

async fn engineering(user: MeinGptUser) -> String {
    format!("Welcome to Engineering, {}.\n", user.sub())
}

fn app(auth: &MeinGptAuth) -> Router {
    Router::new()
        .route("/me", get(me))
        .route("/ping", get(|| async { "pong\n" }))
        .route("/admin", get(admin).route_layer(require_role(Role::Admin)))
        .route(
            "/engineering",
            get(engineering).route_layer(require_team_id(ENGINEERING_TEAM_ID)),
        )
        .layer(auth.layer())
        .route("/health", get(|| async { "ok\n" }))
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

    let dev_issuer = match DevIssuer::start_unless_configured(addr, &[]).await {
        Ok(dev_issuer) => dev_issuer,
        Err(error) => return fail(error),
    };
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
    println!("meingpt-auth quickstart listening on {base}");

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
            println!("curl -i {base}/health");
            println!("curl -i {base}/me");
            println!("curl -i -H \"X-meinGPT-JWT: $ADMIN\" {base}/me");
            println!("curl -i -H \"Authorization: Bearer $ADMIN\" {base}/admin");
            println!("curl -i -H \"Authorization: Bearer $MEMBER\" {base}/admin");
            println!("curl -i -H \"X-meinGPT-JWT: $MEMBER\" {base}/engineering");
        }
        None => println!("Verifying tokens from the configured issuer."),
    }

    let shutdown = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    if let Err(error) = axum::serve(listener, app(&auth))
        .with_graceful_shutdown(shutdown)
        .await
    {
        return fail(format!("server error: {error}"));
    }
    ExitCode::SUCCESS
}

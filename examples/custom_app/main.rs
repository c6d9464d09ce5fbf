//! A meinGPT Custom AI App: a page meinGPT embeds in an iframe, and its
//! backend behind `meingpt-auth`.
//!
//! ```text
//! cargo run --example custom_app
//! ```
//!
//! meinGPT opens the app as `https://your-app/#token=<jwt>`. The page's
//! script (`app.js`, no build step) takes the token from the fragment,
//! removes it from the address bar, calls `/api/me` with `Authorization:
//! Bearer`, shows the signed-in user, and keeps the token fresh by asking
//! meinGPT over `postMessage` (`MEINGPT_TOKEN_REFRESH` →
//! `MEINGPT_TOKEN_RESPONSE {token, expiresAt}` / `MEINGPT_TOKEN_ERROR
//! {error}`), accepting answers only from the meinGPT origin. Every
//! response says that only meinGPT may frame the app
//! (`Content-Security-Policy: frame-ancestors <meinGPT origin>`).
//!
//! Configuration:
//!
//! - `MEINGPT_ORIGIN`: the meinGPT instance that embeds the app and answers
//!   token refreshes; default `MEINGPT_ISSUER`, else `https://app.meingpt.com`.
//! - The token issuer, as in the quickstart: `MEINGPT_ORG_ID` (with
//!   `MEINGPT_ISSUER`, `MEINGPT_JWKS_URL`) or `AUTH_TYPE=jwt_oidc|jwt_local`.
//!   With none of these variables set and a loopback `LISTEN_ADDR` (or
//!   `MEINGPT_DEV_ISSUER=1`), an embedded development issuer starts
//!   (`examples/common/dev_issuer.rs`, not part of the production path)
//!   and the app prints a link with a member's token (open it directly:
//!   outside meinGPT the page signs in but cannot refresh).
//! - `LISTEN_ADDR`: where to listen, default `127.0.0.1:3000`.

mod app;

use std::net::SocketAddr;
use std::process::ExitCode;

use meingpt_auth::{DEFAULT_ISSUER, FrameAncestorsLayer, MeinGptAuth};
use tracing_subscriber::EnvFilter;

// Development only: the embedded issuer when nothing is configured.
#[path = "../common/dev_issuer.rs"]
mod dev_issuer;
use dev_issuer::DevIssuer;

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

    let (origin_variable, origin) = match (
        std::env::var("MEINGPT_ORIGIN"),
        std::env::var("MEINGPT_ISSUER"),
    ) {
        (Ok(origin), _) => ("MEINGPT_ORIGIN", origin),
        (Err(_), Ok(issuer)) => ("MEINGPT_ISSUER", issuer),
        _ => ("MEINGPT_ORIGIN", DEFAULT_ISSUER.to_owned()),
    };
    let frame = match FrameAncestorsLayer::new(&origin) {
        Ok(frame) => frame,
        Err(error) => {
            return fail(format!(
                "{origin_variable} is invalid as the meinGPT origin: {}",
                error.reason()
            ));
        }
    };

    let dev_issuer = match DevIssuer::start_unless_configured(addr, &["MEINGPT_ORIGIN"]).await {
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
    println!("meingpt-auth custom app listening on {base}");
    println!(
        "Only {} may embed it and refresh its tokens.",
        frame.origins().join(", ")
    );
    match &dev_issuer {
        Some(issuer) => {
            let member = issuer.member_token();
            println!(
                "No configuration set: using {}. Its tokens are valid for one hour.\n",
                issuer.describe()
            );
            println!("Open {base}/#token={member}");
        }
        None => println!("Verifying tokens from the configured issuer."),
    }

    let shutdown = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    if let Err(error) = axum::serve(listener, app::router(&auth, &frame))
        .with_graceful_shutdown(shutdown)
        .await
    {
        return fail(format!("server error: {error}"));
    }
    ExitCode::SUCCESS
}

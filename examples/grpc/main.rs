//! A gRPC server (tonic) behind `meingpt-auth`.
//!
//! ```text
//! MEINGPT_ORG_ID=clx0987654321 cargo run --example grpc
//! ```
//!
//! Two services: `demo.Profile/WhoAmI` for any signed-in user and
//! `demo.Admin/Report` for organization admins (`proto.rs` has the
//! `.proto`; the messages and services are written out by hand, so no
//! `protoc` is needed). The token travels as gRPC metadata, `authorization:
//! Bearer <jwt>` or `x-meingpt-jwt: <jwt>`.
//!
//! The auth layer sits on the whole server (`Server::builder().layer(…)`),
//! the role guard on the admin service. Refusals take the gRPC error shape:
//! HTTP 200, trailers-only, `grpc-status` 16 (`UNAUTHENTICATED`) without a
//! valid token, 7 (`PERMISSION_DENIED`) for a member calling `demo.Admin`,
//! 14 (`UNAVAILABLE`) while the issuer's keys cannot be had, with the reason
//! in `grpc-message`. Handlers read the `MeinGptUser` from the request's
//! extensions.
//!
//! Configuration is the crate's environment contract (`MEINGPT_ORG_ID`, or
//! `AUTH_TYPE=jwt_oidc|jwt_local` with `JWT_*`); `LISTEN_ADDR` (default
//! `127.0.0.1:50051`) is where to listen.

mod app;
mod proto;

use std::process::ExitCode;

use meingpt_auth::MeinGptAuth;
use tracing_subscriber::EnvFilter;

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

    let auth = match MeinGptAuth::from_env() {
        Ok(auth) => auth,
        Err(error) => return fail(error),
    };
    // Fail at start-up, not at the first call, when the issuer is unreachable.
    if let Err(error) = auth.preload().await {
        return fail(error);
    }
    let listen = std::env::var("LISTEN_ADDR").unwrap_or_else(|_| "127.0.0.1:50051".to_owned());
    let listener = match tokio::net::TcpListener::bind(&listen).await {
        Ok(listener) => listener,
        Err(error) => return fail(format!("LISTEN_ADDR {listen}: {error}")),
    };
    eprintln!("gRPC on {listen}: demo.Profile/WhoAmI, demo.Admin/Report (admins)");
    match app::serve(auth, listener).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => fail(error),
    }
}

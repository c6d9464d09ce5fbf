//! Minting short-lived tokens for another platform (CustomGPT.ai style) for
//! users meinGPT vouches for.
//!
//! ```text
//! cargo run --example customgpt_jwt
//! ```
//!
//! `POST /api/customgpt-jwt` (or `GET`), behind `meingpt-auth`, answers the
//! signed-in meinGPT user with an RS256 JWT for the other platform:
//!
//! ```json
//! { "token": "eyJ…", "expires_at": 1767225900, "expires_in": 300 }
//! ```
//!
//! Its claims: `sub` (the meinGPT user id), `email`, `roles` (the names of
//! the user's meinGPT teams), `iat`, `exp` (five minutes later), `jti`,
//! `iss` and `aud`. A user without an e-mail address gets `422`; a request
//! without a valid meinGPT token gets `401`. The public key is served as a
//! JWKS at `GET /.well-known/jwks.json`, for the platform to verify with.
//!
//! Configuration:
//!
//! - `CUSTOMGPT_PRIVATE_KEY_PEM`: path of the RSA private key (PEM, PKCS#8
//!   `PRIVATE KEY` or PKCS#1 `RSA PRIVATE KEY`, 2048 bits or more). Required
//!   once anything is configured (meinGPT or any issuer): a key generated at
//!   start would change on every restart. Only with the development issuer
//!   (below) is a development key generated into a temporary file, whose
//!   path and public key are printed.
//! - `CUSTOMGPT_ISSUER` (`iss`, default the app's own `http://LISTEN_ADDR`)
//!   and `CUSTOMGPT_AUDIENCE` (`aud`, default `customgpt`).
//! - The meinGPT side as in the quickstart (`MEINGPT_ORG_ID`, …).
//!   `LISTEN_ADDR` sets where to listen (default `127.0.0.1:3000`).
//! - With none of these variables set and a loopback `LISTEN_ADDR` (or
//!   `MEINGPT_DEV_ISSUER=1`), an embedded development issuer starts and a
//!   member token is printed (`examples/common/dev_issuer.rs`, not part of
//!   the production path). `CUSTOMGPT_PRIVATE_KEY_PEM` counts as
//!   configuration, so a real signing key never mints tokens for the
//!   development issuer's users.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use aws_lc_rs::encoding::AsDer;
use aws_lc_rs::rand::{SecureRandom, SystemRandom};
use aws_lc_rs::rsa::KeySize;
use aws_lc_rs::signature::{KeyPair, RsaKeyPair};
use axum::extract::State;
use axum::http::StatusCode;
use axum::http::header::CACHE_CONTROL;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use meingpt_auth::{MeinGptAuth, MeinGptUser};
use serde::Serialize;
use serde_json::{Value, json};
use tracing_subscriber::EnvFilter;

// Development only: the embedded issuer when nothing is configured.
#[path = "common/dev_issuer.rs"]
mod dev_issuer;
use dev_issuer::DevIssuer;

/// How long a minted token lives: short, the platform asks again.
const TOKEN_LIFETIME: Duration = Duration::from_secs(300);

/// The signing key and what the minted tokens say about themselves.
struct Minter {
    key: EncodingKey,
    kid: String,
    jwks: Value,
    issuer: String,
    audience: String,
}

#[derive(Serialize)]
struct CustomGptClaims<'a> {
    iss: &'a str,
    aud: &'a str,
    sub: &'a str,
    email: &'a str,
    roles: Vec<&'a str>,
    iat: u64,
    exp: u64,
    jti: String,
}

/// `POST|GET /api/customgpt-jwt`: a token for the signed-in user.
async fn customgpt_jwt(State(minter): State<Arc<Minter>>, user: MeinGptUser) -> Response {
    let Some(email) = user.email() else {
        return (
            StatusCode::UNPROCESSABLE_ENTITY,
            Json(json!({
                "error": "no_email",
                "error_description": "the user has no e-mail address to hand on",
            })),
        )
            .into_response();
    };
    let iat = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .as_secs();
    let exp = iat + TOKEN_LIFETIME.as_secs();
    let claims = CustomGptClaims {
        iss: &minter.issuer,
        aud: &minter.audience,
        sub: user.sub(),
        email,
        roles: user.teams().iter().map(|team| team.name.as_str()).collect(),
        iat,
        exp,
        jti: random_id(),
    };
    let mut header = Header::new(Algorithm::RS256);
    header.kid = Some(minter.kid.clone());
    match jsonwebtoken::encode(&header, &claims, &minter.key) {
        Ok(token) => (
            [(CACHE_CONTROL, "no-store")],
            Json(json!({
                "token": token,
                "expires_at": exp,
                "expires_in": TOKEN_LIFETIME.as_secs(),
            })),
        )
            .into_response(),
        Err(error) => {
            tracing::error!(%error, "signing the CustomGPT token failed");
            StatusCode::INTERNAL_SERVER_ERROR.into_response()
        }
    }
}

fn app(auth: &MeinGptAuth, minter: Arc<Minter>) -> Router {
    let jwks = minter.jwks.clone();
    Router::new()
        .route("/api/customgpt-jwt", get(customgpt_jwt).post(customgpt_jwt))
        .layer(auth.layer())
        .route(
            "/.well-known/jwks.json",
            get(move || {
                let jwks = jwks.clone();
                async move { Json(jwks) }
            }),
        )
        .route("/health", get(|| async { "ok\n" }))
        .with_state(minter)
}

fn random_id() -> String {
    let mut bytes = [0u8; 16];
    let _ = SystemRandom::new().fill(&mut bytes);
    URL_SAFE_NO_PAD.encode(bytes)
}

fn pem(label: &str, der: &[u8]) -> String {
    let body = STANDARD.encode(der);
    let mut text = format!("-----BEGIN {label}-----\n");
    for line in body.as_bytes().chunks(64) {
        text.push_str(std::str::from_utf8(line).unwrap_or_default());
        text.push('\n');
    }
    text.push_str(&format!("-----END {label}-----\n"));
    text
}

/// The DER inside the first PEM block labelled `label`.
fn pem_block(text: &str, label: &str) -> Option<Vec<u8>> {
    let begin = format!("-----BEGIN {label}-----");
    let end = format!("-----END {label}-----");
    let start = text.find(&begin)? + begin.len();
    let stop = start + text[start..].find(&end)?;
    let body: String = text[start..stop]
        .chars()
        .filter(|c| !c.is_whitespace())
        .collect();
    STANDARD.decode(body).ok()
}

/// The key pair of a PKCS#8 or PKCS#1 PEM private key.
fn key_pair(text: &str) -> Option<RsaKeyPair> {
    if let Some(der) = pem_block(text, "PRIVATE KEY") {
        return RsaKeyPair::from_pkcs8(&der).ok();
    }
    RsaKeyPair::from_der(&pem_block(text, "RSA PRIVATE KEY")?).ok()
}

/// The public half as a JWKS with one RS256 key, and its `kid` (the RFC
/// 7638 thumbprint).
fn jwks_of(pair: &RsaKeyPair) -> (String, Value) {
    let public = pair.public_key();
    let n = URL_SAFE_NO_PAD.encode(public.modulus().big_endian_without_leading_zero());
    let e = URL_SAFE_NO_PAD.encode(public.exponent().big_endian_without_leading_zero());
    let thumbprint = format!(r#"{{"e":"{e}","kty":"RSA","n":"{n}"}}"#);
    let kid = URL_SAFE_NO_PAD.encode(aws_lc_rs::digest::digest(
        &aws_lc_rs::digest::SHA256,
        thumbprint.as_bytes(),
    ));
    let jwks = json!({ "keys": [{
        "kty": "RSA", "use": "sig", "alg": "RS256", "kid": kid, "n": n, "e": e,
    }]});
    (kid, jwks)
}

/// Writes a new RSA-2048 development key (PKCS#8 PEM, owner-only) into the
/// temporary directory.
fn write_dev_key() -> Result<PathBuf, String> {
    let pair = RsaKeyPair::generate(KeySize::Rsa2048).map_err(|_| "cannot generate a key")?;
    let der = pair.as_der().map_err(|_| "cannot encode the key")?;
    let path = std::env::temp_dir().join(format!(
        "meingpt-customgpt-dev-key-{}.pem",
        std::process::id()
    ));
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let mut file = options
        .open(&path)
        .map_err(|e| format!("cannot write {}: {e}", path.display()))?;
    std::io::Write::write_all(&mut file, pem("PRIVATE KEY", der.as_ref()).as_bytes())
        .map_err(|e| format!("cannot write {}: {e}", path.display()))?;
    Ok(path)
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

    // Decided before a development key is written, so a refusal leaves no
    // file behind.
    let customgpt = [
        "CUSTOMGPT_PRIVATE_KEY_PEM",
        "CUSTOMGPT_ISSUER",
        "CUSTOMGPT_AUDIENCE",
    ];
    let dev_issuer = match DevIssuer::start_unless_configured(addr, &customgpt).await {
        Ok(dev_issuer) => dev_issuer,
        Err(error) => return fail(error),
    };
    // The signing key: configured, or, for the development issuer only, a
    // development key made now. A deployment that forgot its key must not
    // sign with one that changes on every restart.
    let (key_path, dev_key) = match std::env::var_os("CUSTOMGPT_PRIVATE_KEY_PEM") {
        Some(path) => (PathBuf::from(path), false),
        None if dev_issuer.is_none() => {
            // When the issuer's settings are wrong too, they are named first.
            if let Err(error) = MeinGptAuth::from_env() {
                return fail(error);
            }
            return fail(
                "CUSTOMGPT_PRIVATE_KEY_PEM is not set: with an issuer configured, tokens are \
                 signed with your own RSA private key (the path of a PEM file, 2048 bits or \
                 more); a key generated at start would change on every restart",
            );
        }
        None => match write_dev_key() {
            Ok(path) => (path, true),
            Err(error) => return fail(format!("development key: {error}")),
        },
    };
    let key_text = match std::fs::read_to_string(&key_path) {
        Ok(text) => text,
        Err(error) => {
            return fail(format!(
                "CUSTOMGPT_PRIVATE_KEY_PEM is invalid: cannot read {}: {error}",
                key_path.display()
            ));
        }
    };
    let (Ok(key), Some(pair)) = (
        EncodingKey::from_rsa_pem(key_text.as_bytes()),
        key_pair(&key_text),
    ) else {
        return fail(
            "CUSTOMGPT_PRIVATE_KEY_PEM is invalid: not an RSA private key of 2048 bits or more in PEM",
        );
    };
    let (kid, jwks) = jwks_of(&pair);

    let auth = match &dev_issuer {
        None => MeinGptAuth::from_env(),
        Some(dev_issuer) => dev_issuer.auth(),
    };
    let auth = match auth {
        Ok(auth) => auth,
        Err(error) => {
            if dev_key {
                let _ = std::fs::remove_file(&key_path);
            }
            return fail(error);
        }
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
    let minter = Arc::new(Minter {
        key,
        kid,
        jwks,
        issuer: std::env::var("CUSTOMGPT_ISSUER").unwrap_or_else(|_| base.clone()),
        audience: std::env::var("CUSTOMGPT_AUDIENCE").unwrap_or_else(|_| "customgpt".to_owned()),
    });

    println!("meingpt-auth CustomGPT token minting listening on {base}");
    println!("Public keys: {base}/.well-known/jwks.json");
    if dev_key {
        println!("No CUSTOMGPT_PRIVATE_KEY_PEM set: generated a development key.");
        println!("CUSTOMGPT_PRIVATE_KEY_PEM={}", key_path.display());
        let public = pair
            .public_key()
            .as_der()
            .map(|der| pem("PUBLIC KEY", der.as_ref()))
            .unwrap_or_default();
        print!("{public}");
    }
    match &dev_issuer {
        Some(issuer) => {
            let member = issuer.member_token_in_team("team-eng", "Engineering");
            println!(
                "No configuration set: using {}. Its tokens are valid for one hour.\n",
                issuer.describe()
            );
            println!("MEMBER={member}\n");
            println!("curl -i -X POST -H \"X-meinGPT-JWT: $MEMBER\" {base}/api/customgpt-jwt");
        }
        None => println!("Verifying tokens from the configured issuer."),
    }

    let shutdown = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    let served = axum::serve(listener, app(&auth, minter))
        .with_graceful_shutdown(shutdown)
        .await;
    if dev_key {
        let _ = std::fs::remove_file(&key_path);
    }
    if let Err(error) = served {
        return fail(format!("server error: {error}"));
    }
    ExitCode::SUCCESS
}

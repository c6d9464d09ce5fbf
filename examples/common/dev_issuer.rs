//! The examples' development fallback, kept apart from their production
//! path (`MeinGptAuth::from_env()`): when nothing is configured and the
//! example listens on loopback, an embedded issuer (the `testing` feature's
//! `MockIssuer`) serves a JWKS and mints tokens, so that `cargo run
//! --example quickstart` works on a fresh machine.
//!
//! A service copied from an example leaves this module out: it has no use
//! for a private issuer, and must never print tokens.
//!
//! The rules:
//!
//! - Any variable the example reads counts as configuration (those of
//!   `MeinGptAuth::from_env`, plus the example's own, such as
//!   `MEINGPT_ORIGIN`); then no development issuer starts, and a
//!   configuration `from_env` refuses stops the example.
//! - With nothing configured, the development issuer starts only when
//!   `LISTEN_ADDR` is a loopback address, or when `MEINGPT_DEV_ISSUER=1`
//!   asks for it explicitly (for instance inside a container, where the
//!   port is published on the host's loopback only). Otherwise the example
//!   refuses to start.
//! - When it starts, one line on stderr says why.

use std::net::SocketAddr;

use meingpt_auth::config::ENV_VARIABLES;
use meingpt_auth::testing::MockIssuer;
use meingpt_auth::{ConfigError, MeinGptAuth};

/// The variable that asks for the development issuer on any address.
pub const DEV_ISSUER_VARIABLE: &str = "MEINGPT_DEV_ISSUER";

/// An embedded issuer for development; stops when dropped.
pub struct DevIssuer {
    issuer: MockIssuer,
}

impl DevIssuer {
    /// Starts the development issuer when nothing is configured and the
    /// rules above allow it; `Ok(None)` when the example is configured
    /// (it then uses `MeinGptAuth::from_env()`). `example_variables` are
    /// the variables the example reads besides `from_env`'s and
    /// `LISTEN_ADDR`. The error is one line for the example to print.
    pub async fn start_unless_configured(
        listen: SocketAddr,
        example_variables: &[&str],
    ) -> Result<Option<Self>, String> {
        let asked = match std::env::var(DEV_ISSUER_VARIABLE) {
            Err(std::env::VarError::NotPresent) => false,
            Ok(value) if value == "0" => false,
            Ok(value) if value == "1" => true,
            _ => {
                return Err(format!(
                    "{DEV_ISSUER_VARIABLE} is invalid: set it to 1 to start the development \
                     issuer, or leave it unset"
                ));
            }
        };
        let configured = ENV_VARIABLES
            .iter()
            .chain(example_variables)
            .find(|name| std::env::var_os(name).is_some());
        let reason = match (configured, asked) {
            (Some(name), true) => {
                return Err(format!(
                    "{DEV_ISSUER_VARIABLE}=1 asks for the development issuer, but {name} is \
                     set: a configured example never uses it; unset one of them"
                ));
            }
            (Some(_), false) => return Ok(None),
            (None, true) => format!("{DEV_ISSUER_VARIABLE}=1"),
            (None, false) if listen.ip().is_loopback() => {
                format!("nothing is configured and LISTEN_ADDR {listen} is loopback")
            }
            (None, false) => {
                return Err(format!(
                    "nothing is configured: set MEINGPT_ORG_ID (or AUTH_TYPE) to verify real \
                     tokens; the development issuer starts only on a loopback LISTEN_ADDR, not \
                     {listen}, unless {DEV_ISSUER_VARIABLE}=1"
                ));
            }
        };
        let issuer = MockIssuer::start().await;
        eprintln!(
            "development issuer started ({reason}): it prints tokens valid for one hour; \
             never use it to serve real users"
        );
        Ok(Some(Self { issuer }))
    }

    /// An authenticator that accepts the development issuer's tokens.
    pub fn auth(&self) -> Result<MeinGptAuth, ConfigError> {
        self.issuer.auth().build()
    }

    /// Where the development issuer serves its JWKS, and for which
    /// organization, in words.
    pub fn describe(&self) -> String {
        format!(
            "an embedded development issuer at {} (organization {})",
            self.issuer.issuer(),
            self.issuer.organization()
        )
    }

    /// A token of an organization admin.
    #[allow(dead_code)]
    pub fn admin_token(&self) -> String {
        self.issuer.demo_admin().sign()
    }

    /// A token of an organization member.
    #[allow(dead_code)]
    pub fn member_token(&self) -> String {
        self.issuer.demo_member().sign()
    }

    /// A token of an organization member of the team `id` named `name`.
    #[allow(dead_code)]
    pub fn member_token_in_team(&self, id: &str, name: &str) -> String {
        self.issuer.demo_member().team(id, name).sign()
    }
}

//! Every behaviour test of meingpt-auth in one binary: one link of the
//! dependency tree instead of one per file. Each module is a topic; shared
//! helpers live in `common`.

mod common;

mod attacks;
#[cfg(unix)]
mod browser;
mod custom_app;
mod customgpt_jwt;
mod interop;
mod issuer_faults;
mod issuers;
mod jwks_cache;
mod key_lifecycle;
mod layer;
mod mcp_server;
mod properties;
mod quickstart;
mod token_cache;
mod verification;

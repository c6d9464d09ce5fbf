//! Every behaviour test of meingpt-auth in one binary: one link of the
//! dependency tree instead of one per file. Each module is a topic; shared
//! helpers live in `common`.

mod common;

mod any_body;
mod attacks;
#[cfg(unix)]
mod browser;
mod claims_and_config;
mod configuration;
mod custom_app;
mod customgpt_jwt;
mod dev_issuer;
mod enterprise;
mod evidence;
mod grpc;
mod interop;
mod issuer_faults;
mod issuers;
mod jwks_cache;
mod key_lifecycle;
mod layer;
mod mcp_authorization;
mod mcp_server;
#[cfg(feature = "metrics")]
mod metrics;
mod mock_oauth;
mod multi_issuer;
mod properties;
mod quickstart;
mod rejections;
mod resource_metadata;
mod token_cache;
mod verification;

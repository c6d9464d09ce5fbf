//! `meingpt-gateway`: the `meingpt-auth` verifier in front of any HTTP
//! service, as a reverse proxy or as a forward-auth endpoint for nginx,
//! Caddy, Traefik or Envoy. See the package README for the configuration
//! reference and the identity-header contract.
//!
//! The binary is thin: [`cli::parse`], [`config::Settings`], [`app::run`].
//! Every connection is served under [`server`]'s connection policy
//! (timed from accept, capped, shed idle-first). Everything a request meets
//! is a Tower stack: [`access_log`], the request body limit, the `Host`
//! check ([`host`]), [`gateway::Gateway`] (endpoints,
//! [`admission`] and dispatch), and per
//! route the crate's `auth.layer()`, a policy guard and the frame-ancestors
//! layer around a [`proxy::Proxy`]; a route that is an OAuth protected
//! resource for MCP clients (`[route.protected_resource]`) adds its
//! audience binding and scope guard, and the gateway serves its metadata.

#![forbid(unsafe_code)]
#![warn(missing_docs, rust_2018_idioms, unreachable_pub)]

pub mod access_log;
pub mod admission;
pub mod app;
pub mod cli;
pub mod config;
#[cfg(feature = "dev-issuer")]
pub mod dev;
pub mod embed;
pub mod gateway;
pub mod host;
pub mod identity;
pub mod metrics;
pub mod proxy;
mod resource;
pub mod routes;
pub mod server;
pub mod tls;
pub mod upgrade;

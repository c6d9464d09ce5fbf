//! `meingpt-gateway`: the `meingpt-auth` verifier in front of any HTTP
//! service, as a reverse proxy or as a forward-auth endpoint for nginx,
//! Caddy, Traefik or Envoy. See the package README for the configuration
//! reference and the identity-header contract.
//!
//! The binary is thin: [`cli::parse`], [`config::Settings`], [`app::run`].
//! This library exposes what the binary, the tests and the benchmarks
//! drive; the rest is private.
//!
//! A request's path through the modules:
//!
//! 1. `server`: the connection policy (timed from accept, capped, shed
//!    idle-first); each request gets the connection's `ClientInfo`.
//! 2. `access_log`: one line and one count per request, from the verdict
//!    the answer carries (`outcome`).
//! 3. `gateway`: tells the job apart (`/healthz`, `/readyz`, forward auth,
//!    a route), checks `Host` and the path ([`admission`]), picks the route
//!    ([`routes`]).
//! 4. `decision`: per route, the crate's `auth.layer()` and the route's
//!    policy guard, the one decision path of both stacks: in proxy mode
//!    around the frame-ancestors policy and the `proxy`; in forward auth
//!    (`forward_auth`) around the answer that gives the identity headers
//!    (`identity`). An embed route ([`embed`]) puts its own layers around
//!    the same decision, which reads its session cookie first
//!    (`embed_route`). A route that is an OAuth protected resource for MCP
//!    clients (`[route.protected_resource]`, `resource`) adds its audience
//!    binding and scope guard to both of its stacks, and the gateway
//!    serves its metadata.

#![forbid(unsafe_code)]
#![warn(missing_docs, rust_2018_idioms, unreachable_pub)]

mod access_log;
pub mod admission;
mod answer;
pub mod app;
pub mod cli;
pub mod config;
mod decision;
#[cfg(feature = "dev-issuer")]
mod dev;
pub mod embed;
mod embed_route;
mod forward_auth;
mod gateway;
mod identity;
pub mod log_writer;
mod metrics;
mod outcome;
mod proxy;
mod resource;
pub mod routes;
mod server;
pub mod upgrade;
mod upstream;

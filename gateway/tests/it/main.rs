//! Behaviour tests of `meingpt-gateway`: one binary, a module per topic.

mod common;
mod config;
mod connections;
mod embed;
mod first_run;
mod forward_auth;
mod headers;
mod lifecycle;
mod limits;
mod outcomes;
mod protected_resource;
mod proxy;
mod secrets;
mod streaming;
mod tls;
mod upgrades;
mod upstream;

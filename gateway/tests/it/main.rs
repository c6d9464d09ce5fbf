//! Behaviour tests of `meingpt-gateway`: one binary, a module per topic.

mod common;
mod forward_auth;
mod limits;
mod proxy;
mod secrets;
mod streaming;

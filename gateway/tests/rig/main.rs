//! The gateway with the real components it is deployed with: nginx and
//! Caddy in front of it (forward auth, with the configuration files of
//! `gateway/deploy/`), a Python MCP server behind it, the official Python
//! MCP client and rmcp's client through it, and the official Python SDK's
//! OAuth client signing in to it through `[route.protected_resource]`
//! against the test kit's OAuth authorization server. Everything on
//! 127.0.0.1.
//!
//! `bash scripts/test.sh` installs the components. A missing one fails its
//! test with how to install it, unless its skip variable is set:
//! `MEINGPT_SKIP_NGINX=1`, `MEINGPT_SKIP_CADDY=1`,
//! `MEINGPT_SKIP_PYTHON_MCP=1`.

mod caddy;
mod common;
mod docs;
mod embed;
mod mcp;
mod mcp_oauth;
mod nginx;

//! `[route.protected_resource]`: a route that MCP clients (and other
//! standard OAuth clients) sign in to by themselves (RFC 9728 metadata,
//! challenges that name it, tokens bound to the resource).

use meingpt_auth::{MeinGptAuth, ProtectedResource, ResourceMetadata};
use serde::Deserialize;

use super::{AuthSource, ConfigError, crate_reason};

/// `[route.protected_resource]`: the route is an OAuth protected resource.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProtectedResourceConfig {
    /// The URL clients use for the route, such as
    /// `https://gateway.example.com/mcp`: the resource identifier tokens
    /// must be issued for (`aud`).
    pub resource: String,
    /// The scopes the resource publishes (`scopes_supported`); tokens of
    /// OAuth issuers must grant all of them.
    #[serde(default)]
    pub scopes: Vec<String>,
    /// A human-readable name clients may show (`resource_name`).
    pub resource_name: Option<String>,
    /// The authorization servers to publish; the configured issuers when
    /// absent.
    pub authorization_servers: Option<Vec<String>>,
}

/// The metadata of route `index`'s resource, described against the
/// authenticator; errors name `route[index].protected_resource.…`.
pub(super) fn resolve_resource(
    index: usize,
    (public, embed): (bool, bool),
    config: ProtectedResourceConfig,
    auth: &AuthSource,
) -> Result<ResourceMetadata, ConfigError> {
    let key = |field: &str| format!("route[{index}].protected_resource{field}");
    if public {
        return Err(ConfigError::new(
            key(""),
            "a public route asks for no token; remove public = true or the protected resource",
        ));
    }
    if embed {
        return Err(ConfigError::new(
            key(""),
            "an embed route is a web app framed by meinGPT, not an MCP server; remove embed = true \
             or the protected resource",
        ));
    }
    let AuthSource::Configured(auth) = auth else {
        return Err(ConfigError::new(
            key(""),
            "needs an issuer OAuth clients can sign in with (AUTH_TYPE=jwt_oidc, JWT_ISS); the \
             development issuer is no OAuth authorization server",
        ));
    };
    let mut resource = ProtectedResource::new(config.resource).scopes_supported(config.scopes);
    if let Some(name) = config.resource_name {
        resource = resource.resource_name(name);
    }
    if let Some(servers) = config.authorization_servers {
        resource = resource.authorization_servers(servers);
    }
    describe(auth, resource).map_err(|error| {
        let field = match error.setting() {
            "scopes_supported" => ".scopes".to_owned(),
            other => format!(".{other}"),
        };
        ConfigError::new(key(&field), crate_reason(&error))
    })
}

fn describe(
    auth: &MeinGptAuth,
    resource: ProtectedResource,
) -> Result<ResourceMetadata, meingpt_auth::ConfigError> {
    auth.describe_resource(resource)
}

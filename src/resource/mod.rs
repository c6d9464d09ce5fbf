//! OAuth 2.0 Protected Resource Metadata (RFC 9728): how a service tells
//! any standard OAuth client — the MCP SDKs' clients, IDE agents, desktop
//! assistants — where to get a token for it.
//!
//! Configure the resource with [`ProtectedResource`] on the first
//! configuration of an authenticator
//! ([`MeinGptAuthBuilder::protected_resource`](crate::MeinGptAuthBuilder::protected_resource),
//! or `MCP_RESOURCE_URL` and `MCP_SCOPES` in
//! [`MeinGptAuth::from_env`](crate::MeinGptAuth::from_env)). Then:
//!
//! - the document is served by [`ResourceMetadata::router`] (axum) or
//!   [`ResourceMetadata::layer`] (any Tower stack), publicly, at
//!   `/.well-known/oauth-protected-resource` and at the path-suffixed form
//!   RFC 9728 §3.1 derives from the resource (`/.well-known/oauth-protected-resource/mcp`
//!   for `https://host/mcp`), with `Cache-Control`;
//! - every `WWW-Authenticate` challenge of the auth layer and the guards
//!   carries `resource_metadata="<that URL>"` (RFC 9728 §5.1), so a client
//!   learns where to sign in from its first refused request;
//! - issuers configured with
//!   [`resource_audience`](crate::MeinGptAuthBuilder::resource_audience)
//!   accept only tokens whose `aud` contains the resource (RFC 8707).
//!
//! The document names `resource`, `authorization_servers` (the configured
//! issuers unless given: OpenID Connect issuers first, as MCP clients use
//! the first one, then the others that are URLs, meinGPT instances among
//! them), `scopes_supported` when any, `bearer_methods_supported:
//! ["header"]`, and `resource_name` when given.
//!
//! # Example
//!
//! ```
//! use axum::{Router, body::Body, routing::get};
//! use http::{Request, StatusCode, header};
//! use meingpt_auth::{MeinGptAuth, ProtectedResource};
//! use tower::ServiceExt;
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() {
//! let auth = MeinGptAuth::from_issuers([
//!     MeinGptAuth::builder()
//!         .organization("clx0987654321")
//!         .protected_resource(
//!             ProtectedResource::new("https://mcp.example.com/mcp").scopes_supported(["mcp:tools"]),
//!         ),
//!     MeinGptAuth::oidc("https://login.example.com").resource_audience(),
//! ])
//! .unwrap();
//! let metadata = auth.resource_metadata().unwrap();
//! let app = Router::new()
//!     .route("/mcp", get(|| async { "tools" }))
//!     .layer(auth.layer())
//!     .merge(metadata.router());
//!
//! let response = app
//!     .clone()
//!     .oneshot(Request::get("/mcp").body(Body::empty()).unwrap())
//!     .await
//!     .unwrap();
//! assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
//! assert_eq!(
//!     response.headers()[header::WWW_AUTHENTICATE],
//!     "Bearer realm=\"meingpt\", resource_metadata=\"https://mcp.example.com/.well-known/oauth-protected-resource/mcp\""
//! );
//!
//! let request = Request::get("/.well-known/oauth-protected-resource/mcp").body(Body::empty());
//! let response = app.oneshot(request.unwrap()).await.unwrap();
//! assert_eq!(response.status(), StatusCode::OK);
//! # }
//! ```

mod serve;

use std::fmt;
use std::sync::Arc;

use bytes::Bytes;
use serde::Serialize;

use crate::url_policy::is_loopback;

pub use serve::{ServeResourceMetadata, ServeResourceMetadataLayer};

/// The well-known URI of RFC 9728 §3.
pub const WELL_KNOWN_PATH: &str = "/.well-known/oauth-protected-resource";

/// How long clients and caches may keep the document (`Cache-Control`).
const MAX_AGE_SECONDS: u32 = 3600;

/// A protected resource as configured: its identifier and what its
/// metadata document says. Checked when the authenticator is built; see
/// the [module docs](self).
#[derive(Debug, Clone, PartialEq, Eq)]
#[must_use]
pub struct ProtectedResource {
    pub(crate) resource: String,
    pub(crate) authorization_servers: Option<Vec<String>>,
    pub(crate) scopes_supported: Vec<String>,
    pub(crate) resource_name: Option<String>,
}

impl ProtectedResource {
    /// The resource identifier: the URL clients use, such as
    /// `https://mcp.example.com/mcp` for an MCP server's endpoint. It must
    /// be `https://` (`http://` for loopback hosts only), without query or
    /// fragment; its scheme and host are written in lower case, and a URL
    /// with no path has no trailing `/` (as the MCP specification asks).
    pub fn new(resource: impl Into<String>) -> Self {
        Self {
            resource: resource.into(),
            authorization_servers: None,
            scopes_supported: Vec::new(),
            resource_name: None,
        }
    }

    /// The authorization servers' issuer identifiers to publish, instead
    /// of the configured issuers.
    pub fn authorization_servers<I, T>(mut self, issuers: I) -> Self
    where
        I: IntoIterator<Item = T>,
        T: Into<String>,
    {
        self.authorization_servers = Some(issuers.into_iter().map(Into::into).collect());
        self
    }

    /// The scopes the resource uses (`scopes_supported`): for MCP, the
    /// scopes a client asks for when its first challenge names none.
    pub fn scopes_supported<I, T>(mut self, scopes: I) -> Self
    where
        I: IntoIterator<Item = T>,
        T: Into<String>,
    {
        self.scopes_supported = scopes.into_iter().map(Into::into).collect();
        self
    }

    /// A human-readable name of the resource (`resource_name`), which
    /// clients may show the user.
    pub fn resource_name(mut self, name: impl Into<String>) -> Self {
        self.resource_name = Some(name.into());
        self
    }
}

/// What is wrong with a [`ProtectedResource`], and the setting it is about.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ResourceError {
    pub(crate) setting: &'static str,
    pub(crate) reason: String,
}

impl ResourceError {
    fn new(setting: &'static str, reason: impl Into<String>) -> Self {
        Self {
            setting,
            reason: reason.into(),
        }
    }
}

impl ProtectedResource {
    /// The resource identifier, checked and written as published.
    pub(crate) fn identifier(&self) -> Result<String, ResourceError> {
        let (origin, path) = self.origin_and_path()?;
        Ok(format!("{origin}{path}"))
    }

    /// `scheme://host[:port]` and the path (empty for `/`) of the checked
    /// identifier.
    fn origin_and_path(&self) -> Result<(String, String), ResourceError> {
        let url = resource_url(&self.resource)?;
        let path = match url.path() {
            "/" => String::new(),
            path => path.to_owned(),
        };
        Ok((url.origin().ascii_serialization(), path))
    }
}

/// A checked protected resource and its metadata document, ready to serve;
/// cheap to clone. See the [module docs](self).
#[derive(Clone)]
pub struct ResourceMetadata {
    inner: Arc<Inner>,
}

struct Inner {
    resource: String,
    metadata_url: String,
    /// The paths the document is served at: the root well-known path, and
    /// the path-suffixed one when the resource has a path.
    paths: Vec<String>,
    scopes_supported: Vec<String>,
    document: Bytes,
}

/// The document as RFC 9728 §2 names its members; empty lists are left
/// out (§3.2).
#[derive(Serialize)]
struct Document<'a> {
    resource: &'a str,
    #[serde(skip_serializing_if = "<[_]>::is_empty")]
    authorization_servers: &'a [String],
    #[serde(skip_serializing_if = "<[_]>::is_empty")]
    scopes_supported: &'a [String],
    bearer_methods_supported: [&'static str; 1],
    #[serde(skip_serializing_if = "Option::is_none")]
    resource_name: Option<&'a str>,
}

impl ResourceMetadata {
    /// Checks `resource`; `issuers` are the configured issuers, in
    /// configuration order, each with whether it is an OpenID Connect
    /// issuer (published first).
    pub(crate) fn new(
        resource: &ProtectedResource,
        issuers: &[(&str, bool)],
    ) -> Result<Self, ResourceError> {
        let (origin, path) = resource.origin_and_path()?;
        let identifier = format!("{origin}{path}");
        let metadata_url = format!("{origin}{WELL_KNOWN_PATH}{path}");
        let mut paths = vec![WELL_KNOWN_PATH.to_owned()];
        if !path.is_empty() {
            paths.push(format!("{WELL_KNOWN_PATH}{path}"));
        }
        for scope in &resource.scopes_supported {
            if !is_scope_token(scope) {
                return Err(ResourceError::new(
                    "scopes_supported",
                    "a scope is one or more printable ASCII characters without spaces, \
                     quotes or backslashes (RFC 6749 §3.3)",
                ));
            }
        }
        if resource
            .resource_name
            .as_deref()
            .is_some_and(|name| name.trim().is_empty() || name.chars().any(char::is_control))
        {
            return Err(ResourceError::new(
                "resource_name",
                "a name is not empty and has no control characters",
            ));
        }
        let authorization_servers = match &resource.authorization_servers {
            Some(servers) => {
                if let Some(server) = servers.iter().find(|server| !is_issuer_url(server)) {
                    return Err(ResourceError::new(
                        "authorization_servers",
                        format!(
                            "{server:?} is not an issuer identifier (an https:// URL, or \
                             http:// for loopback hosts, without query or fragment)"
                        ),
                    ));
                }
                servers.clone()
            }
            None => derived_servers(issuers),
        };
        if authorization_servers.is_empty() {
            return Err(ResourceError::new(
                "authorization_servers",
                "no configured issuer is a URL an OAuth client could sign in with; \
                 name the authorization servers with ProtectedResource::authorization_servers",
            ));
        }
        let document = Document {
            resource: &identifier,
            authorization_servers: &authorization_servers,
            scopes_supported: &resource.scopes_supported,
            bearer_methods_supported: ["header"],
            resource_name: resource.resource_name.as_deref(),
        };
        let mut document = serde_json::to_vec_pretty(&document).expect("the document serializes");
        document.push(b'\n');
        Ok(Self {
            inner: Arc::new(Inner {
                resource: identifier,
                metadata_url,
                paths,
                scopes_supported: resource.scopes_supported.clone(),
                document: Bytes::from(document),
            }),
        })
    }

    /// The resource identifier, as published and as
    /// [`resource_audience`](crate::MeinGptAuthBuilder::resource_audience)
    /// compares it with `aud`.
    pub fn resource(&self) -> &str {
        &self.inner.resource
    }

    /// The URL of the metadata document (the path-suffixed well-known URL
    /// of the resource), as challenges name it in `resource_metadata`.
    pub fn metadata_url(&self) -> &str {
        &self.inner.metadata_url
    }

    /// The paths the document is served at: `/.well-known/oauth-protected-resource`,
    /// and the path-suffixed form when the resource has a path.
    pub fn paths(&self) -> &[String] {
        &self.inner.paths
    }

    /// The published `scopes_supported`.
    pub fn scopes_supported(&self) -> &[String] {
        &self.inner.scopes_supported
    }

    /// The document (JSON), byte for byte as served.
    pub fn document(&self) -> &[u8] {
        &self.inner.document
    }

    pub(crate) fn document_bytes(&self) -> Bytes {
        self.inner.document.clone()
    }
}

impl fmt::Debug for ResourceMetadata {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ResourceMetadata")
            .field("resource", &self.inner.resource)
            .field("metadata_url", &self.inner.metadata_url)
            .finish_non_exhaustive()
    }
}

/// The resource identifier, checked: `https://` (or `http://` to
/// loopback), no credentials, query or fragment.
fn resource_url(raw: &str) -> Result<url::Url, ResourceError> {
    let invalid = |reason: &str| {
        ResourceError::new(
            "resource",
            format!(
                "expected the URL clients use, such as https://mcp.example.com/mcp, \
                 found {reason}"
            ),
        )
    };
    let url = url::Url::parse(raw).map_err(|_| invalid("something that does not parse"))?;
    if !matches!(url.scheme(), "https" | "http") || !url.has_host() {
        return Err(invalid("no https:// URL"));
    }
    if url.scheme() == "http" && !is_loopback(&url) {
        return Err(ResourceError::new(
            "resource",
            "plain http:// is only allowed for loopback hosts; use https://",
        ));
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err(invalid("credentials in the URL"));
    }
    if url.query().is_some() || url.fragment().is_some() {
        return Err(invalid(
            "a query or fragment (a resource identifier has neither)",
        ));
    }
    Ok(url)
}

/// Whether `issuer` can be published as an authorization server: an
/// `https://` URL (`http://` to loopback) without query or fragment.
fn is_issuer_url(issuer: &str) -> bool {
    url::Url::parse(issuer).is_ok_and(|url| {
        url.has_host()
            && url.query().is_none()
            && url.fragment().is_none()
            && (url.scheme() == "https" || (url.scheme() == "http" && is_loopback(&url)))
    })
}

/// The configured issuers an OAuth client could sign in with: OpenID
/// Connect issuers first, then the other issuers that are URLs; each once.
fn derived_servers(issuers: &[(&str, bool)]) -> Vec<String> {
    let mut servers: Vec<String> = Vec::new();
    let oidc = issuers.iter().filter(|(_, oidc)| *oidc);
    let others = issuers.iter().filter(|(_, oidc)| !*oidc);
    for (issuer, _) in oidc.chain(others) {
        if is_issuer_url(issuer) && !servers.iter().any(|known| known == issuer) {
            servers.push((*issuer).to_owned());
        }
    }
    servers
}

/// An OAuth scope token (RFC 6749 §3.3): `%x21 / %x23-5B / %x5D-7E`, at
/// least one.
pub(crate) fn is_scope_token(scope: &str) -> bool {
    !scope.is_empty()
        && scope
            .bytes()
            .all(|b| b == 0x21 || (0x23..=0x5b).contains(&b) || (0x5d..=0x7e).contains(&b))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn metadata(resource: ProtectedResource) -> Result<ResourceMetadata, ResourceError> {
        ResourceMetadata::new(
            &resource,
            &[
                ("https://app.meingpt.com", false),
                ("https://login.example.com/v2.0", true),
            ],
        )
    }

    #[test]
    fn a_resource_with_a_path_is_served_at_the_root_and_the_path_suffixed_well_known_url() {
        let metadata = metadata(ProtectedResource::new("https://MCP.Example.com:443/mcp")).unwrap();
        assert_eq!(metadata.resource(), "https://mcp.example.com/mcp");
        assert_eq!(
            metadata.metadata_url(),
            "https://mcp.example.com/.well-known/oauth-protected-resource/mcp"
        );
        assert_eq!(
            metadata.paths(),
            [
                "/.well-known/oauth-protected-resource",
                "/.well-known/oauth-protected-resource/mcp"
            ]
        );
    }

    #[test]
    fn a_resource_without_a_path_has_no_trailing_slash_and_one_well_known_url() {
        for resource in ["https://mcp.example.com", "https://mcp.example.com/"] {
            let metadata = metadata(ProtectedResource::new(resource)).unwrap();
            assert_eq!(metadata.resource(), "https://mcp.example.com");
            assert_eq!(
                metadata.metadata_url(),
                "https://mcp.example.com/.well-known/oauth-protected-resource"
            );
            assert_eq!(metadata.paths(), ["/.well-known/oauth-protected-resource"]);
        }
    }

    #[test]
    fn the_document_names_openid_connect_issuers_first_and_omits_what_is_empty() {
        let derived = metadata(ProtectedResource::new("https://mcp.example.com/mcp")).unwrap();
        let document: serde_json::Value = serde_json::from_slice(derived.document()).unwrap();
        assert_eq!(
            document,
            serde_json::json!({
                "resource": "https://mcp.example.com/mcp",
                "authorization_servers": [
                    "https://login.example.com/v2.0",
                    "https://app.meingpt.com"
                ],
                "bearer_methods_supported": ["header"],
            })
        );
        let named = metadata(
            ProtectedResource::new("https://mcp.example.com/mcp")
                .authorization_servers(["https://id.example.com/realms/acme"])
                .scopes_supported(["mcp:tools"])
                .resource_name("Acme \"tools\""),
        )
        .unwrap();
        let document: serde_json::Value = serde_json::from_slice(named.document()).unwrap();
        assert_eq!(
            document,
            serde_json::json!({
                "resource": "https://mcp.example.com/mcp",
                "authorization_servers": ["https://id.example.com/realms/acme"],
                "scopes_supported": ["mcp:tools"],
                "bearer_methods_supported": ["header"],
                "resource_name": "Acme \"tools\"",
            })
        );
    }

    #[test]
    fn issuers_that_are_no_urls_are_not_published_and_none_at_all_is_refused() {
        let only_static = ResourceMetadata::new(
            &ProtectedResource::new("https://mcp.example.com"),
            &[("opengpts", false)],
        );
        assert_eq!(only_static.unwrap_err().setting, "authorization_servers");
        let some = ResourceMetadata::new(
            &ProtectedResource::new("https://mcp.example.com"),
            &[("opengpts", false), ("http://127.0.0.1:4000", false)],
        )
        .unwrap();
        let document: serde_json::Value = serde_json::from_slice(some.document()).unwrap();
        assert_eq!(
            document["authorization_servers"],
            serde_json::json!(["http://127.0.0.1:4000"])
        );
    }

    #[test]
    fn bad_resources_scopes_and_servers_name_their_setting() {
        for resource in [
            "mcp.example.com/mcp",
            "http://mcp.example.com/mcp",
            "https://mcp.example.com/mcp?x=1",
            "https://mcp.example.com/mcp#top",
            "https://user:pw@mcp.example.com/mcp",
            "ftp://mcp.example.com/mcp",
        ] {
            let error = metadata(ProtectedResource::new(resource)).unwrap_err();
            assert_eq!(error.setting, "resource", "{resource}");
        }
        assert!(metadata(ProtectedResource::new("http://127.0.0.1:8080/mcp")).is_ok());
        for scope in ["", "a b", "a\"b", "a\\b", "é"] {
            let error =
                metadata(ProtectedResource::new("https://x.example").scopes_supported([scope]))
                    .unwrap_err();
            assert_eq!(error.setting, "scopes_supported", "{scope:?}");
        }
        let error = metadata(
            ProtectedResource::new("https://x.example")
                .authorization_servers(["http://id.example"]),
        )
        .unwrap_err();
        assert_eq!(error.setting, "authorization_servers");
        let error = metadata(ProtectedResource::new("https://x.example").resource_name("a\nb"))
            .unwrap_err();
        assert_eq!(error.setting, "resource_name");
    }
}

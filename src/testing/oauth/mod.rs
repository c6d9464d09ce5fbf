//! [`OAuthServer`]: the mock issuer as a minimal OAuth 2.1 authorization
//! server (`endpoints.rs` and `grant.rs` serve it).

mod endpoints;
mod grant;

use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

use serde_json::{Map, Value};

pub(super) use endpoints::{authorize, metadata, register};
pub(super) use grant::token;

/// What the mock issuer does as an OAuth 2.1 authorization server, for
/// testing sign-in end to end with real OAuth clients (the MCP SDKs' among
/// them) and no identity provider. Nothing is allowed that is not
/// configured here.
///
/// Off until [`MockIssuer::serve_oauth`](super::MockIssuer::serve_oauth);
/// then the issuer also serves:
///
/// | endpoint | what it does |
/// | --- | --- |
/// | `GET /.well-known/oauth-authorization-server` | RFC 8414 metadata |
/// | `POST /oauth/token` | `client_credentials`, and `authorization_code` with PKCE (S256, verified) |
/// | `GET /oauth/authorize` | approves at once: redirects to the client's `redirect_uri` with `code`, `state` and `iss` (RFC 9207) |
/// | `POST /oauth/register` | dynamic client registration (RFC 7591), when enabled |
///
/// Access tokens are JWTs (`typ: at+jwt`, RFC 9068) signed with the
/// issuer's current key of its first organization, the key set its
/// discovery document names: `iss`, `sub` (the signed-in user, or the
/// client for `client_credentials`), `aud` (the `resource` the client asked
/// for, RFC 8707; the organization when it asked for none), `client_id`,
/// `scope` (when any was granted), `exp` (one hour), `iat` and `jti`.
///
/// # Example
///
/// ```
/// use meingpt_auth::MeinGptAuth;
/// use meingpt_auth::testing::{MockIssuer, OAuthServer};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// let issuer = MockIssuer::start().await;
/// issuer.serve_oauth(OAuthServer::new().client("ci-bot", "s3cret", ["mcp:tools"]));
///
/// let answer: serde_json::Value = reqwest::Client::new()
///     .post(format!("{}/oauth/token", issuer.issuer()))
///     .basic_auth("ci-bot", Some("s3cret"))
///     .form(&[
///         ("grant_type", "client_credentials"),
///         ("scope", "mcp:tools"),
///         ("resource", "https://mcp.example.com/mcp"),
///     ])
///     .send()
///     .await
///     .unwrap()
///     .json()
///     .await
///     .unwrap();
///
/// let auth = MeinGptAuth::oidc(issuer.issuer())
///     .audience("https://mcp.example.com/mcp")
///     .build()
///     .unwrap();
/// let user = auth.verify(answer["access_token"].as_str().unwrap()).await.unwrap();
/// assert_eq!(user.sub(), "ci-bot");
/// assert!(user.has_scope("mcp:tools"));
/// # }
/// ```
#[derive(Debug, Clone)]
#[must_use]
pub struct OAuthServer {
    clients: Vec<Client>,
    dynamic_registration: bool,
    scopes_supported: Vec<String>,
    user: String,
    user_claims: Map<String, Value>,
}

impl Default for OAuthServer {
    fn default() -> Self {
        Self::new()
    }
}

impl OAuthServer {
    /// An authorization server with no client, no dynamic registration, no
    /// published scopes, that signs in the user `user-1`.
    pub fn new() -> Self {
        Self {
            clients: Vec::new(),
            dynamic_registration: false,
            scopes_supported: Vec::new(),
            user: "user-1".to_owned(),
            user_claims: Map::new(),
        }
    }

    /// A pre-registered confidential client for the `client_credentials`
    /// grant: authenticated with `secret` (HTTP Basic or in the form), and
    /// granted only scopes among `scopes` (`invalid_scope` otherwise).
    pub fn client<I, T>(mut self, id: &str, secret: &str, scopes: I) -> Self
    where
        I: IntoIterator<Item = T>,
        T: Into<String>,
    {
        self.clients.push(Client {
            id: id.to_owned(),
            secret: Some(secret.to_owned()),
            redirect_uris: Vec::new(),
            grant_types: vec!["client_credentials".to_owned()],
            scopes: Some(scopes.into_iter().map(Into::into).collect()),
        });
        self
    }

    /// Lets clients register themselves (RFC 7591) at `/oauth/register`,
    /// as the MCP SDKs' clients do before the authorization-code flow. A
    /// registered client may ask for any scope of
    /// [`scopes_supported`](Self::scopes_supported), or any scope at all
    /// when none is published.
    pub fn dynamic_registration(mut self, enabled: bool) -> Self {
        self.dynamic_registration = enabled;
        self
    }

    /// The scopes published in the metadata (`scopes_supported`).
    pub fn scopes_supported<I, T>(mut self, scopes: I) -> Self
    where
        I: IntoIterator<Item = T>,
        T: Into<String>,
    {
        self.scopes_supported = scopes.into_iter().map(Into::into).collect();
        self
    }

    /// The user the authorization endpoint signs in (`sub`; default
    /// `user-1`).
    pub fn user(mut self, sub: &str) -> Self {
        self.user = sub.to_owned();
        self
    }

    /// Another claim of the signed-in user's tokens (such as `email`).
    pub fn user_claim(mut self, name: &str, value: impl Into<Value>) -> Self {
        self.user_claims.insert(name.to_owned(), value.into());
        self
    }
}

/// A token the mock authorization server issued, as its token endpoint saw
/// the request; see [`MockIssuer::oauth_grants`](super::MockIssuer::oauth_grants).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Grant {
    /// `client_credentials` or `authorization_code`.
    pub grant_type: String,
    /// The client the token was issued to.
    pub client_id: String,
    /// The scopes granted, in the order asked (none when none was asked).
    pub scopes: Vec<String>,
    /// The `resource` parameters (RFC 8707), which became `aud`.
    pub resources: Vec<String>,
    /// The token's subject.
    pub sub: String,
}

/// A client the server knows: pre-registered or registered dynamically.
#[derive(Debug, Clone)]
struct Client {
    id: String,
    /// `None`: a public client (`token_endpoint_auth_method: none`).
    secret: Option<String>,
    redirect_uris: Vec<String>,
    grant_types: Vec<String>,
    /// `None`: any published scope (any scope when none is published).
    scopes: Option<Vec<String>>,
}

/// An authorization code not yet exchanged.
#[derive(Debug)]
struct PendingCode {
    client_id: String,
    redirect_uri: String,
    code_challenge: String,
    scopes: Vec<String>,
    resources: Vec<String>,
    /// When it was issued (seconds since the Unix epoch).
    issued_at: u64,
}

/// How long an authorization code may wait for its exchange.
const CODE_LIFETIME: Duration = Duration::from_secs(60);

/// The authorization server's state: its settings, the clients it knows,
/// the codes it issued and the grants it made.
#[derive(Debug)]
pub(super) struct OAuthState {
    settings: OAuthServer,
    clients: BTreeMap<String, Client>,
    codes: HashMap<String, PendingCode>,
    pub(super) grants: Vec<Grant>,
}

impl OAuthState {
    pub(super) fn new(settings: OAuthServer) -> Self {
        let clients = settings
            .clients
            .iter()
            .map(|client| (client.id.clone(), client.clone()))
            .collect();
        Self {
            settings,
            clients,
            codes: HashMap::new(),
            grants: Vec::new(),
        }
    }

    /// Whether `client` may be granted every one of `scopes`.
    fn allows(&self, client: &Client, scopes: &[String]) -> bool {
        let allowed = match &client.scopes {
            Some(scopes) => scopes,
            None if self.settings.scopes_supported.is_empty() => return true,
            None => &self.settings.scopes_supported,
        };
        scopes.iter().all(|scope| allowed.contains(scope))
    }
}

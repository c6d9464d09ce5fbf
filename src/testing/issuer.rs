//! [`MockIssuer`]: a meinGPT-like issuer on loopback that rotates keys,
//! fails on demand and mints tokens.

use std::collections::BTreeMap;
use std::io;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use aws_lc_rs::rand::{SecureRandom, SystemRandom};
use aws_lc_rs::signature::KeyPair;
use axum::Router;
use axum::routing::{get, post};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::Algorithm;
use serde_json::{Map, Value, json};
use tokio::task::JoinHandle;

use super::key::{MockKey, rsa_sign};
use super::oauth::{self, Grant, OAuthServer, OAuthState};
use super::server::{Fault, IssuerState, OrganizationKeys, lock, serve_discovery, serve_jwks};
use super::token::TokenBuilder;
use crate::clock::{Clock, SystemClock};
use crate::{MeinGptAuth, MeinGptAuthBuilder};

/// A meinGPT-like issuer on `127.0.0.1`: serves
/// `/api/custom-apps/v1/jwks/{organization}`, counts fetches, rotates keys,
/// fails on demand and mints tokens. Stops when dropped.
pub struct MockIssuer {
    state: Arc<IssuerState>,
    addr: SocketAddr,
    task: JoinHandle<()>,
}

impl std::fmt::Debug for MockIssuer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MockIssuer")
            .field("issuer", &self.state.issuer)
            .field("organization", &self.state.organization)
            .finish_non_exhaustive()
    }
}

impl MockIssuer {
    /// Starts an issuer for the organization `org-test` with one key.
    pub async fn start() -> Self {
        Self::for_organization("org-test").await
    }

    /// Starts an issuer for `organization` with one RSA-2048 key.
    pub async fn for_organization(organization: &str) -> Self {
        Self::for_organizations(&[organization]).await
    }

    /// Starts an issuer serving several organizations, each with its own
    /// RSA-2048 key and JWKS. The first is the one [`token`](Self::token),
    /// [`rotate`](Self::rotate) and the other methods speak of.
    ///
    /// # Panics
    ///
    /// If `organizations` is empty, or no port on `127.0.0.1` can be bound
    /// (on such machines use [`bind_for_organizations`](Self::bind_for_organizations)).
    pub async fn for_organizations(organizations: &[&str]) -> Self {
        Self::bind_for_organizations(SocketAddr::from(([127, 0, 0, 1], 0)), organizations)
            .await
            .expect("bind 127.0.0.1:0")
    }

    /// Starts an issuer for the organization `org-test` listening on `addr`,
    /// for test machines where only some loopback addresses or ports may be
    /// used (such as `[::1]:0` or a fixed port). Its issuer origin is
    /// `http://{addr}` with the port actually bound.
    ///
    /// ```
    /// use std::net::SocketAddr;
    /// use meingpt_auth::testing::MockIssuer;
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> std::io::Result<()> {
    /// let addr: SocketAddr = "127.0.0.1:0".parse().unwrap();
    /// let issuer = MockIssuer::bind(addr).await?;
    /// assert_eq!(issuer.addr().ip(), addr.ip());
    /// assert_eq!(issuer.issuer(), format!("http://{}", issuer.addr()));
    /// # Ok(())
    /// # }
    /// ```
    ///
    /// # Errors
    ///
    /// When `addr` cannot be bound (in use, not available on this machine),
    /// or is not a loopback address (`InvalidInput`): the issuer serves
    /// plain `http://`, which the authenticator fetches from loopback
    /// hosts only.
    pub async fn bind(addr: SocketAddr) -> io::Result<Self> {
        Self::bind_for_organizations(addr, &["org-test"]).await
    }

    /// [`for_organizations`](Self::for_organizations), listening on `addr`
    /// (see [`bind`](Self::bind)).
    ///
    /// # Errors
    ///
    /// As [`bind`](Self::bind).
    ///
    /// # Panics
    ///
    /// If `organizations` is empty.
    pub async fn bind_for_organizations(
        addr: SocketAddr,
        organizations: &[&str],
    ) -> io::Result<Self> {
        assert!(!organizations.is_empty(), "at least one organization");
        if !addr.ip().is_loopback() {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!(
                    "the mock issuer serves plain http://, fetched from loopback hosts only; \
                     {addr} is not a loopback address"
                ),
            ));
        }
        let listener = tokio::net::TcpListener::bind(addr).await?;
        let addr = listener.local_addr()?;
        let state = Arc::new(IssuerState {
            organization: organizations[0].to_owned(),
            issuer: format!("http://{addr}"),
            organizations: Mutex::new(BTreeMap::new()),
            fault: Mutex::new(None),
            discovery: Mutex::new(None),
            discovery_fetches: AtomicUsize::new(0),
            next_kid: AtomicUsize::new(1),
            held: tokio::sync::watch::Sender::new(false),
            oauth: Mutex::new(None),
        });
        for organization in organizations {
            let key = state.new_key();
            lock(&state.organizations).insert(
                (*organization).to_owned(),
                OrganizationKeys {
                    generated: vec![key.clone()],
                    published: vec![key.clone()],
                    signing: key,
                    fetches: 0,
                },
            );
        }
        let app = Router::new()
            .route("/api/custom-apps/v1/jwks/{organization}", get(serve_jwks))
            .route("/.well-known/openid-configuration", get(serve_discovery))
            .route(
                "/.well-known/oauth-authorization-server",
                get(oauth::metadata),
            )
            .route("/oauth/authorize", get(oauth::authorize))
            .route("/oauth/token", post(oauth::token))
            .route("/oauth/register", post(oauth::register))
            .with_state(state.clone());
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Ok(Self { state, addr, task })
    }

    /// The issuer origin (`iss`), such as `http://127.0.0.1:41234`.
    pub fn issuer(&self) -> &str {
        &self.state.issuer
    }

    /// The address the issuer listens on.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The organization id (`aud`).
    pub fn organization(&self) -> &str {
        &self.state.organization
    }

    /// The URL of the organization's JWKS.
    pub fn jwks_url(&self) -> String {
        format!(
            "{}/api/custom-apps/v1/jwks/{}",
            self.state.issuer, self.state.organization
        )
    }

    /// A builder already pointed at this issuer and organization.
    pub fn auth(&self) -> MeinGptAuthBuilder {
        MeinGptAuth::builder()
            .issuer(self.issuer())
            .organization(self.organization())
    }

    /// How many times a JWKS was requested (all organizations together).
    pub fn fetch_count(&self) -> usize {
        lock(&self.state.organizations)
            .values()
            .map(|keys| keys.fetches)
            .sum()
    }

    /// How many times this organization's JWKS was requested.
    pub fn fetch_count_for(&self, organization: &str) -> usize {
        self.state.with_keys(organization, |keys| keys.fetches)
    }

    /// How many times the discovery document was requested.
    pub fn discovery_count(&self) -> usize {
        self.state.discovery_fetches.load(Ordering::SeqCst)
    }

    /// Serves this document at `/.well-known/openid-configuration` instead
    /// of the default one (`issuer`, `jwks_uri` of the first organization,
    /// `id_token_signing_alg_values_supported: ["RS256"]`).
    pub fn set_discovery(&self, document: Value) {
        *lock(&self.state.discovery) = Some(document);
    }

    /// Acts as an OAuth 2.1 authorization server from now on, as `server`
    /// says (see [`OAuthServer`]); a second call starts afresh (clients,
    /// codes and grants forgotten). Until the first call the OAuth
    /// endpoints answer `404`.
    pub fn serve_oauth(&self, server: OAuthServer) {
        *lock(&self.state.oauth) = Some(OAuthState::new(server));
    }

    /// Every token the authorization server issued, in order: what a test
    /// checks to see which grant, scopes and resources a client asked for.
    pub fn oauth_grants(&self) -> Vec<Grant> {
        lock(&self.state.oauth)
            .as_ref()
            .map(|oauth| oauth.grants.clone())
            .unwrap_or_default()
    }

    /// Makes every following JWKS request fail this way.
    pub fn fail(&self, fault: Fault) {
        *lock(&self.state.fault) = Some(fault);
    }

    /// Serves the JWKS normally again.
    pub fn recover(&self) {
        *lock(&self.state.fault) = None;
    }

    /// Holds back every JWKS answer, faulty or not, until
    /// [`release`](Self::release): requests are counted in
    /// [`fetch_count`](Self::fetch_count) as they arrive, then wait. Lets a
    /// test keep a fetch in flight for as long as it needs.
    pub fn hold(&self) {
        self.state.held.send_replace(true);
    }

    /// Lets the held JWKS answers, and all later ones, go out.
    pub fn release(&self) {
        self.state.held.send_replace(false);
    }

    /// Adds a new key, publishes it beside the old ones and signs with it
    /// from now on. Returns its `kid`.
    pub fn rotate(&self) -> String {
        let key = self.state.new_key();
        let kid = key.kid.clone();
        self.state.with_keys(&self.state.organization, |keys| {
            keys.generated.push(key.clone());
            keys.published.push(key.clone());
            keys.signing = key;
        });
        kid
    }

    /// Stops publishing the key with this `kid` (tokens can still be
    /// signed with it, as by an attacker holding a retired key).
    pub fn unpublish(&self, kid: &str) {
        self.state.with_keys(&self.state.organization, |keys| {
            keys.published.retain(|key| key.kid != kid);
        });
    }

    /// Publishes again a key generated earlier (by [`rotate`](Self::rotate))
    /// and since unpublished; does nothing for an unknown or published `kid`.
    pub fn publish(&self, kid: &str) {
        self.state.with_keys(&self.state.organization, |keys| {
            let published = keys.published.iter().any(|key| key.kid == kid);
            if let Some(key) = keys.generated.iter().find(|key| key.kid == kid)
                && !published
            {
                let key = key.clone();
                keys.published.push(key);
            }
        });
    }

    /// The `kid` tokens are signed with now.
    pub fn current_kid(&self) -> String {
        self.signing_key().kid
    }

    /// The JWK of the current signing key, as published.
    pub fn public_jwk(&self) -> Value {
        self.signing_key().jwk
    }

    /// The current signing key's public key as PKCS#1 `RSAPublicKey` DER.
    pub fn public_key_der(&self) -> Vec<u8> {
        self.signing_key().pair.public_key().as_ref().to_vec()
    }

    fn signing_key(&self) -> MockKey {
        self.state
            .with_keys(&self.state.organization, |keys| keys.signing.clone())
    }

    /// A token builder with meinGPT's claims for a member, valid for an hour.
    pub fn token(&self) -> TokenBuilder {
        self.token_for(&self.state.organization.clone())
    }

    /// The development admin of the examples: `admin-1`, "Ada Admin",
    /// role admin, team Engineering.
    pub fn demo_admin(&self) -> TokenBuilder {
        self.token()
            .sub("admin-1")
            .username("Ada Admin")
            .email("ada@example.com")
            .role("admin")
            .team("team-eng", "Engineering")
    }

    /// The development member of the examples: `member-1`, "Max Member",
    /// role member, team Marketing.
    pub fn demo_member(&self) -> TokenBuilder {
        self.token()
            .sub("member-1")
            .username("Max Member")
            .email("max@example.com")
            .role("member")
            .team("team-mkt", "Marketing")
    }

    /// A token builder for another organization this issuer serves: signed
    /// with that organization's key, `aud` set to it.
    pub fn token_for(&self, organization: &str) -> TokenBuilder {
        let key = self
            .state
            .with_keys(organization, |keys| keys.signing.clone());
        let now = SystemClock.now().as_secs() as i64;
        let mut claims = Map::new();
        claims.insert("iss".into(), json!(self.state.issuer));
        claims.insert("sub".into(), json!("user-1"));
        claims.insert("aud".into(), json!(organization));
        claims.insert("exp".into(), json!(now + 3600));
        claims.insert("iat".into(), json!(now));
        claims.insert("jti".into(), json!(random_uuid()));
        claims.insert("email".into(), json!("ada@example.com"));
        claims.insert("username".into(), json!("Ada Lovelace"));
        claims.insert("organizationName".into(), json!("Example GmbH"));
        claims.insert("role".into(), json!("member"));
        claims.insert("teams".into(), json!([]));
        let mut header = Map::new();
        header.insert("alg".into(), json!("RS256"));
        header.insert("typ".into(), json!("JWT"));
        header.insert("kid".into(), json!(key.kid));
        TokenBuilder {
            key,
            header,
            claims,
        }
    }

    /// Signs arbitrary header and claims text with the current key (RS256),
    /// byte for byte as given: for tokens no builder would make, such as
    /// duplicate member names.
    pub fn sign_raw(&self, header: &str, claims: &str) -> String {
        let key = self.signing_key();
        let message = format!(
            "{}.{}",
            URL_SAFE_NO_PAD.encode(header),
            URL_SAFE_NO_PAD.encode(claims)
        );
        let signature = rsa_sign(&key.pair, Algorithm::RS256, message.as_bytes());
        format!("{message}.{}", URL_SAFE_NO_PAD.encode(signature))
    }
}

impl Drop for MockIssuer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

fn random_uuid() -> String {
    let mut bytes = [0u8; 16];
    SystemRandom::new()
        .fill(&mut bytes)
        .expect("system randomness");
    bytes[6] = (bytes[6] & 0x0f) | 0x40;
    bytes[8] = (bytes[8] & 0x3f) | 0x80;
    let hex: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    format!(
        "{}-{}-{}-{}-{}",
        &hex[..8],
        &hex[8..12],
        &hex[12..16],
        &hex[16..20],
        &hex[20..]
    )
}

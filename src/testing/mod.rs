//! A test kit (feature `testing`): [`MockIssuer`] serves a JWKS on
//! `127.0.0.1` and mints tokens with [`TokenBuilder`]; [`MockClock`] is a
//! clock tests move by hand; [`verified_token_count`] and [`key_generation`]
//! show what an authenticator holds right now.
//!
//! Use it in your own tests to exercise routes behind the auth layer with
//! real, signed tokens and no network beyond loopback.
//!
//! # Example
//!
//! ```
//! use axum::{Router, routing::get, body::Body};
//! use http::{Request, StatusCode};
//! use meingpt_auth::{MeinGptUser, testing::MockIssuer};
//! use tower::ServiceExt;
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() {
//! let issuer = MockIssuer::start().await;
//! let auth = issuer.auth().build().unwrap();
//! let app = Router::new()
//!     .route("/me", get(|user: MeinGptUser| async move { user.sub().to_owned() }))
//!     .layer(auth.layer());
//!
//! let token = issuer.token().sub("user-42").role("admin").sign();
//! let request = Request::get("/me")
//!     .header("x-meingpt-jwt", token)
//!     .body(Body::empty())
//!     .unwrap();
//! let response = app.oneshot(request).await.unwrap();
//! assert_eq!(response.status(), StatusCode::OK);
//! assert_eq!(issuer.fetch_count(), 1);
//! # }
//! ```

use std::collections::BTreeMap;
use std::io;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use aws_lc_rs::rand::{SecureRandom, SystemRandom};
use aws_lc_rs::rsa::KeySize;
use aws_lc_rs::signature::{self, KeyPair, RsaKeyPair};
use axum::Router;
use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use bytes::Bytes;
use jsonwebtoken::Algorithm;
use serde_json::{Map, Value, json};
use tokio::task::JoinHandle;

use crate::clock::{Clock, SystemClock};
use crate::{MeinGptAuth, MeinGptAuthBuilder};

mod inspect;

pub use inspect::{key_generation, verified_token_count};

/// How the mock issuer misbehaves when asked for its JWKS.
///
/// Every fault still counts the request in
/// [`fetch_count`](MockIssuer::fetch_count).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Fault {
    /// Answer with this status code.
    Status(u16),
    /// Answer `200` with a body that is not JSON.
    Garbage,
    /// Accept the request and never answer.
    Hang,
    /// Answer `200` with exactly this body.
    Body(String),
    /// Answer `200` announcing the whole JWKS in `Content-Length`, send the
    /// first half of it, then close the connection.
    Truncated,
    /// Answer `200` with the JWKS, sending one byte of the body each time
    /// this much time has passed (a drip that never stalls for long but
    /// takes forever).
    Slow(Duration),
    /// Answer `302 Found` with `Location` set to this URL.
    Redirect(String),
    /// Answer `200` with the JWKS under this `Content-Type` instead of
    /// `application/json`.
    ContentType(String),
}

/// One RSA-2048 signing key of the mock issuer.
#[derive(Clone)]
struct MockKey {
    kid: String,
    pair: Arc<RsaKeyPair>,
    jwk: Value,
}

impl MockKey {
    fn generate(kid: String) -> Self {
        let pair = RsaKeyPair::generate(KeySize::Rsa2048).expect("RSA key generation");
        let public = pair.public_key();
        let jwk = json!({
            "kty": "RSA",
            "use": "sig",
            "alg": "RS256",
            "kid": kid,
            "n": URL_SAFE_NO_PAD.encode(public.modulus().big_endian_without_leading_zero()),
            "e": URL_SAFE_NO_PAD.encode(public.exponent().big_endian_without_leading_zero()),
        });
        Self {
            kid,
            pair: Arc::new(pair),
            jwk,
        }
    }
}

/// One organization's keys: the published ones and the one signing now.
struct OrganizationKeys {
    /// Every key ever generated, published or not.
    generated: Vec<MockKey>,
    published: Vec<MockKey>,
    signing: MockKey,
    fetches: usize,
}

struct IssuerState {
    organization: String,
    issuer: String,
    organizations: Mutex<BTreeMap<String, OrganizationKeys>>,
    fault: Mutex<Option<Fault>>,
    discovery: Mutex<Option<Value>>,
    discovery_fetches: AtomicUsize,
    next_kid: AtomicUsize,
    /// `true` while JWKS answers are held back.
    held: tokio::sync::watch::Sender<bool>,
}

impl IssuerState {
    fn new_key(&self) -> MockKey {
        let n = self.next_kid.fetch_add(1, Ordering::SeqCst);
        MockKey::generate(format!("key-{n}"))
    }

    /// Runs `f` on the keys of `organization`.
    ///
    /// # Panics
    ///
    /// If the issuer does not serve `organization` (a mistake in the test).
    fn with_keys<T>(&self, organization: &str, f: impl FnOnce(&mut OrganizationKeys) -> T) -> T {
        let mut organizations = lock(&self.organizations);
        let keys = organizations.get_mut(organization).unwrap_or_else(|| {
            panic!("the mock issuer does not serve organization {organization:?}")
        });
        f(keys)
    }
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

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

async fn serve_jwks(
    State(state): State<Arc<IssuerState>>,
    Path(organization): Path<String>,
) -> Response {
    let published = {
        let mut organizations = lock(&state.organizations);
        let Some(keys) = organizations.get_mut(&organization) else {
            return StatusCode::NOT_FOUND.into_response();
        };
        keys.fetches += 1;
        keys.published.clone()
    };
    // Only fails if the issuer is gone, and then nobody waits for the answer.
    let _ = state.held.subscribe().wait_for(|held| !held).await;
    let fault = lock(&state.fault).clone();
    let json_body =
        |body: String| ([(header::CONTENT_TYPE, "application/json")], body).into_response();
    let jwks = || {
        let keys: Vec<Value> = published.iter().map(|k| k.jwk.clone()).collect();
        json!({ "keys": keys }).to_string()
    };
    match fault {
        None => json_body(jwks()),
        Some(Fault::Status(code)) => {
            let status = StatusCode::from_u16(code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
            (status, "issuer failure").into_response()
        }
        Some(Fault::Garbage) => json_body("<html>not a key set {{{".to_owned()),
        Some(Fault::Body(body)) => json_body(body),
        Some(Fault::Hang) => std::future::pending().await,
        Some(Fault::Truncated) => {
            let body = Bytes::from(jwks());
            let length = body.len();
            let half = body.slice(..length / 2);
            // Half the body goes out (the pause lets the server flush it with
            // the head), then the error makes the server close the
            // connection mid-body.
            let truncated = futures_util::stream::unfold(Some(half), |half| async move {
                match half {
                    Some(half) => Some((Ok(half), None)),
                    None => {
                        tokio::time::sleep(Duration::from_millis(20)).await;
                        Some((Err(io::Error::other("truncated on purpose")), None))
                    }
                }
            });
            streamed(length, Body::from_stream(truncated))
        }
        Some(Fault::Slow(every)) => {
            let body = Bytes::from(jwks());
            let length = body.len();
            let drip = futures_util::stream::unfold(body, move |rest| async move {
                if rest.is_empty() {
                    return None;
                }
                tokio::time::sleep(every).await;
                let mut rest = rest;
                let byte = rest.split_to(1);
                Some((Ok::<_, io::Error>(byte), rest))
            });
            streamed(length, Body::from_stream(drip))
        }
        Some(Fault::Redirect(location)) => {
            (StatusCode::FOUND, [(header::LOCATION, location)]).into_response()
        }
        Some(Fault::ContentType(content_type)) => {
            ([(header::CONTENT_TYPE, content_type)], jwks()).into_response()
        }
    }
}

/// A `200` JSON response whose `Content-Length` announces `length` bytes,
/// whatever `body` then sends.
fn streamed(length: usize, body: Body) -> Response {
    let mut response = Response::new(body);
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        header::HeaderValue::from_static("application/json"),
    );
    headers.insert(header::CONTENT_LENGTH, header::HeaderValue::from(length));
    response
}

async fn serve_discovery(State(state): State<Arc<IssuerState>>) -> Response {
    state.discovery_fetches.fetch_add(1, Ordering::SeqCst);
    let document = lock(&state.discovery).clone().unwrap_or_else(|| {
        json!({
            "issuer": state.issuer,
            "jwks_uri": format!(
                "{}/api/custom-apps/v1/jwks/{}",
                state.issuer, state.organization
            ),
            "id_token_signing_alg_values_supported": ["RS256"],
        })
    });
    (
        [(header::CONTENT_TYPE, "application/json")],
        document.to_string(),
    )
        .into_response()
}

fn rsa_sign(pair: &RsaKeyPair, alg: Algorithm, message: &[u8]) -> Vec<u8> {
    let padding: &'static dyn signature::RsaEncoding = match alg {
        Algorithm::RS384 => &signature::RSA_PKCS1_SHA384,
        Algorithm::RS512 => &signature::RSA_PKCS1_SHA512,
        Algorithm::PS256 => &signature::RSA_PSS_SHA256,
        Algorithm::PS384 => &signature::RSA_PSS_SHA384,
        Algorithm::PS512 => &signature::RSA_PSS_SHA512,
        _ => &signature::RSA_PKCS1_SHA256,
    };
    let mut signature = vec![0; pair.public_modulus_len()];
    pair.sign(padding, &SystemRandom::new(), message, &mut signature)
        .expect("RSA signing");
    signature
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

/// Builds and signs a token with the issuer's current key. Starts from
/// meinGPT's claims for a member (`sub` `user-1`, one hour lifetime).
#[derive(Clone)]
#[must_use]
pub struct TokenBuilder {
    key: MockKey,
    header: Map<String, Value>,
    claims: Map<String, Value>,
}

impl std::fmt::Debug for TokenBuilder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenBuilder")
            .field("kid", &self.key.kid)
            .finish_non_exhaustive()
    }
}

impl TokenBuilder {
    /// Sets any claim.
    pub fn claim(mut self, name: &str, value: impl Into<Value>) -> Self {
        self.claims.insert(name.to_owned(), value.into());
        self
    }

    /// Removes a claim.
    pub fn without(mut self, name: &str) -> Self {
        self.claims.remove(name);
        self
    }

    /// Sets any header parameter.
    pub fn header(mut self, name: &str, value: impl Into<Value>) -> Self {
        self.header.insert(name.to_owned(), value.into());
        self
    }

    /// Removes a header parameter.
    pub fn without_header(mut self, name: &str) -> Self {
        self.header.remove(name);
        self
    }

    /// The subject.
    #[allow(clippy::should_implement_trait)]
    pub fn sub(self, sub: &str) -> Self {
        self.claim("sub", sub)
    }

    /// The e-mail address.
    pub fn email(self, email: &str) -> Self {
        self.claim("email", email)
    }

    /// The user's name.
    pub fn username(self, username: &str) -> Self {
        self.claim("username", username)
    }

    /// The role (`"admin"`, `"member"`, …).
    pub fn role(self, role: &str) -> Self {
        self.claim("role", role)
    }

    /// Adds a team.
    pub fn team(mut self, id: &str, name: &str) -> Self {
        let teams = self
            .claims
            .entry("teams")
            .or_insert_with(|| Value::Array(Vec::new()));
        if !teams.is_array() {
            *teams = Value::Array(Vec::new());
        }
        if let Value::Array(teams) = teams {
            teams.push(json!({ "id": id, "name": name }));
        }
        self
    }

    /// The audience (organization id), as a string or an array.
    pub fn audience(self, aud: impl Into<Value>) -> Self {
        self.claim("aud", aud)
    }

    /// The issuer.
    pub fn issuer(self, iss: &str) -> Self {
        self.claim("iss", iss)
    }

    /// `iat` now and `exp` after `lifetime`.
    pub fn expires_in(self, lifetime: Duration) -> Self {
        let now = SystemClock.now().as_secs() as i64;
        self.claim("iat", now)
            .claim("exp", now + lifetime.as_secs() as i64)
    }

    /// `exp` as seconds since the Unix epoch.
    pub fn expires_at(self, exp: i64) -> Self {
        self.claim("exp", exp)
    }

    /// `iat` as seconds since the Unix epoch.
    pub fn issued_at(self, iat: i64) -> Self {
        self.claim("iat", iat)
    }

    /// `nbf` as seconds since the Unix epoch.
    pub fn not_before(self, nbf: i64) -> Self {
        self.claim("nbf", nbf)
    }

    /// The `kid` header.
    pub fn kid(self, kid: &str) -> Self {
        self.header("kid", kid)
    }

    /// Signs with the issuer's current key (RS256).
    pub fn sign(self) -> String {
        self.sign_with(Algorithm::RS256)
    }

    /// Signs with the issuer's current RSA key using `alg` (RS*/PS*), and
    /// says so in the header.
    pub fn sign_with(mut self, alg: Algorithm) -> String {
        self.header.insert("alg".into(), json!(algorithm_name(alg)));
        let message = format!(
            "{}.{}",
            URL_SAFE_NO_PAD.encode(Value::Object(self.header).to_string()),
            URL_SAFE_NO_PAD.encode(Value::Object(self.claims).to_string())
        );
        let signature = rsa_sign(&self.key.pair, alg, message.as_bytes());
        format!("{message}.{}", URL_SAFE_NO_PAD.encode(signature))
    }

    /// The header and claims, unsigned, for tokens signed some other way.
    pub fn into_parts(self) -> (Map<String, Value>, Map<String, Value>) {
        (self.header, self.claims)
    }
}

/// A clock that moves only when told to. Starts at the system time.
#[derive(Debug, Clone)]
pub struct MockClock {
    nanos: Arc<AtomicU64>,
}

impl Default for MockClock {
    fn default() -> Self {
        Self::new()
    }
}

impl MockClock {
    /// A clock set to the current system time.
    pub fn new() -> Self {
        Self {
            nanos: Arc::new(AtomicU64::new(SystemClock.now().as_nanos() as u64)),
        }
    }

    /// Moves the clock forward.
    pub fn advance(&self, by: Duration) {
        self.nanos.fetch_add(by.as_nanos() as u64, Ordering::SeqCst);
    }
}

impl Clock for MockClock {
    fn now(&self) -> Duration {
        Duration::from_nanos(self.nanos.load(Ordering::SeqCst))
    }
}

/// The registered JWA name of `alg` (`"RS256"`, …).
fn algorithm_name(alg: Algorithm) -> &'static str {
    match alg {
        Algorithm::HS256 => "HS256",
        Algorithm::HS384 => "HS384",
        Algorithm::HS512 => "HS512",
        Algorithm::ES256 => "ES256",
        Algorithm::ES384 => "ES384",
        Algorithm::RS256 => "RS256",
        Algorithm::RS384 => "RS384",
        Algorithm::RS512 => "RS512",
        Algorithm::PS256 => "PS256",
        Algorithm::PS384 => "PS384",
        Algorithm::PS512 => "PS512",
        Algorithm::EdDSA => "EdDSA",
        _ => "unknown",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn algorithm_names_round_trip_through_jsonwebtoken() {
        for name in ["RS256", "PS512", "ES384", "EdDSA", "HS256"] {
            let alg: Algorithm = name.parse().unwrap();
            assert_eq!(algorithm_name(alg), name);
        }
    }
}

//! The mock authorization server's endpoints: metadata, registration,
//! authorization and token.

use std::sync::Arc;

use aws_lc_rs::digest;
use aws_lc_rs::rand::{SecureRandom, SystemRandom};
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use serde_json::{Value, json};

use super::{CODE_LIFETIME, Client, Grant, OAuthState, PendingCode};
use crate::clock::{Clock, SystemClock};
use crate::testing::server::{IssuerState, lock};
use crate::testing::token::TokenBuilder;

/// The form (or query) parameters of a request, repeated ones kept.
struct Params(Vec<(String, String)>);

impl Params {
    fn parse(input: &[u8]) -> Self {
        Self(url::form_urlencoded::parse(input).into_owned().collect())
    }

    /// The one value of `name`; `Err` when it is repeated.
    fn one<'a>(&'a self, name: &'a str) -> Result<Option<&'a str>, ()> {
        let mut values = self.all(name);
        match (values.next(), values.next()) {
            (value, None) => Ok(value),
            _ => Err(()),
        }
    }

    fn all<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a str> + 'a {
        self.0
            .iter()
            .filter(move |(key, _)| key == name)
            .map(|(_, value)| value.as_str())
    }

    /// `scope`, split on spaces.
    fn scopes(&self) -> Result<Vec<String>, ()> {
        Ok(self
            .one("scope")?
            .unwrap_or_default()
            .split(' ')
            .filter(|scope| !scope.is_empty())
            .map(str::to_owned)
            .collect())
    }
}

/// Runs `f` on the authorization server, or answers `404` when it is off.
fn with_oauth(state: &IssuerState, f: impl FnOnce(&mut OAuthState) -> Response) -> Response {
    match lock(&state.oauth).as_mut() {
        Some(oauth) => f(oauth),
        None => StatusCode::NOT_FOUND.into_response(),
    }
}

/// An OAuth error answer (RFC 6749 §5.2).
fn oauth_error(status: StatusCode, error: &str, description: &str) -> Response {
    (
        status,
        [
            (header::CONTENT_TYPE, "application/json"),
            (header::CACHE_CONTROL, "no-store"),
        ],
        json!({ "error": error, "error_description": description }).to_string(),
    )
        .into_response()
}

/// A token request the server refuses: an OAuth error, `400` unless the
/// client failed to authenticate (`401 invalid_client`).
#[derive(Debug)]
struct Refusal {
    error: &'static str,
    description: &'static str,
}

impl Refusal {
    fn new(error: &'static str, description: &'static str) -> Self {
        Self { error, description }
    }
}

impl IntoResponse for Refusal {
    fn into_response(self) -> Response {
        if self.error != "invalid_client" {
            return oauth_error(StatusCode::BAD_REQUEST, self.error, self.description);
        }
        let mut response = oauth_error(StatusCode::UNAUTHORIZED, self.error, self.description);
        response.headers_mut().insert(
            header::WWW_AUTHENTICATE,
            header::HeaderValue::from_static("Basic realm=\"mock-issuer\""),
        );
        response
    }
}

fn json_answer(status: StatusCode, body: Value) -> Response {
    (
        status,
        [
            (header::CONTENT_TYPE, "application/json"),
            (header::CACHE_CONTROL, "no-store"),
        ],
        body.to_string(),
    )
        .into_response()
}

/// `GET /.well-known/oauth-authorization-server` (RFC 8414).
pub(in crate::testing) async fn metadata(State(state): State<Arc<IssuerState>>) -> Response {
    let issuer = state.issuer.clone();
    let jwks_uri = format!("{issuer}/api/custom-apps/v1/jwks/{}", state.organization);
    with_oauth(&state, |oauth| {
        let mut document = json!({
            "issuer": issuer,
            "authorization_endpoint": format!("{issuer}/oauth/authorize"),
            "token_endpoint": format!("{issuer}/oauth/token"),
            "jwks_uri": jwks_uri,
            "response_types_supported": ["code"],
            "grant_types_supported": ["authorization_code", "client_credentials"],
            "token_endpoint_auth_methods_supported":
                ["client_secret_basic", "client_secret_post", "none"],
            "code_challenge_methods_supported": ["S256"],
            "authorization_response_iss_parameter_supported": true,
        });
        if oauth.settings.dynamic_registration {
            document["registration_endpoint"] = json!(format!("{issuer}/oauth/register"));
        }
        if !oauth.settings.scopes_supported.is_empty() {
            document["scopes_supported"] = json!(oauth.settings.scopes_supported);
        }
        json_answer(StatusCode::OK, document)
    })
}

/// `POST /oauth/register` (RFC 7591): a JSON document of client metadata.
pub(in crate::testing) async fn register(
    State(state): State<Arc<IssuerState>>,
    body: Bytes,
) -> Response {
    with_oauth(&state, |oauth| {
        if !oauth.settings.dynamic_registration {
            return StatusCode::NOT_FOUND.into_response();
        }
        let Ok(Value::Object(request)) = serde_json::from_slice::<Value>(&body) else {
            return oauth_error(
                StatusCode::BAD_REQUEST,
                "invalid_client_metadata",
                "the body is not a JSON object",
            );
        };
        let strings = |name: &str| -> Option<Vec<String>> {
            match request.get(name) {
                None => Some(Vec::new()),
                Some(Value::Array(items)) => items
                    .iter()
                    .map(|item| item.as_str().map(str::to_owned))
                    .collect(),
                Some(_) => None,
            }
        };
        let (Some(redirect_uris), Some(mut grant_types)) =
            (strings("redirect_uris"), strings("grant_types"))
        else {
            return oauth_error(
                StatusCode::BAD_REQUEST,
                "invalid_client_metadata",
                "redirect_uris and grant_types are arrays of strings",
            );
        };
        if redirect_uris
            .iter()
            .any(|uri| url::Url::parse(uri).is_err() || uri.contains('#'))
        {
            return oauth_error(
                StatusCode::BAD_REQUEST,
                "invalid_redirect_uri",
                "a redirect URI is not an absolute URI without fragment",
            );
        }
        if grant_types.is_empty() {
            grant_types.push("authorization_code".to_owned());
        }
        let method = request
            .get("token_endpoint_auth_method")
            .and_then(Value::as_str)
            .unwrap_or("client_secret_basic")
            .to_owned();
        let secret = match method.as_str() {
            "none" => None,
            "client_secret_basic" | "client_secret_post" => Some(random_token()),
            _ => {
                return oauth_error(
                    StatusCode::BAD_REQUEST,
                    "invalid_client_metadata",
                    "token_endpoint_auth_method is none, client_secret_basic or client_secret_post",
                );
            }
        };
        let client = Client {
            id: format!("client-{}", oauth.clients.len() + 1),
            secret,
            redirect_uris,
            grant_types,
            scopes: None,
        };
        let mut answer = json!({
            "client_id": client.id,
            "client_id_issued_at": SystemClock.now().as_secs(),
            "redirect_uris": client.redirect_uris,
            "grant_types": client.grant_types,
            "response_types": ["code"],
            "token_endpoint_auth_method": method,
        });
        if let Some(secret) = &client.secret {
            answer["client_secret"] = json!(secret);
            answer["client_secret_expires_at"] = json!(0);
        }
        for name in ["client_name", "scope"] {
            if let Some(value) = request.get(name).filter(|value| value.is_string()) {
                answer[name] = value.clone();
            }
        }
        oauth.clients.insert(client.id.clone(), client);
        json_answer(StatusCode::CREATED, answer)
    })
}

/// `GET /oauth/authorize`: approves at once, redirecting to the client with
/// a code; or says why not (on the page when the client or its redirect URI
/// is unknown, RFC 6749 §4.1.2.1, in the redirect otherwise).
pub(in crate::testing) async fn authorize(
    State(state): State<Arc<IssuerState>>,
    uri: Uri,
) -> Response {
    let issuer = state.issuer.clone();
    let params = Params::parse(uri.query().unwrap_or_default().as_bytes());
    with_oauth(&state, |oauth| {
        let (Ok(Some(client_id)), Ok(redirect_uri)) =
            (params.one("client_id"), params.one("redirect_uri"))
        else {
            return oauth_error(
                StatusCode::BAD_REQUEST,
                "invalid_request",
                "client_id is required once, redirect_uri at most once",
            );
        };
        let Some(client) = oauth.clients.get(client_id) else {
            return oauth_error(StatusCode::BAD_REQUEST, "invalid_client", "unknown client");
        };
        let redirect_uri = match (redirect_uri, client.redirect_uris.as_slice()) {
            (Some(uri), registered) if registered.iter().any(|r| r == uri) => uri.to_owned(),
            (None, [only]) => only.clone(),
            _ => {
                return oauth_error(
                    StatusCode::BAD_REQUEST,
                    "invalid_request",
                    "redirect_uri is not registered for this client",
                );
            }
        };
        let state_param = params.one("state").ok().flatten().map(str::to_owned);
        let redirect = |pairs: &[(&str, &str)]| {
            let mut location = url::Url::parse(&redirect_uri).expect("checked at registration");
            {
                let mut query = location.query_pairs_mut();
                for (name, value) in pairs {
                    query.append_pair(name, value);
                }
                if let Some(state) = &state_param {
                    query.append_pair("state", state);
                }
                query.append_pair("iss", &issuer);
            }
            (
                StatusCode::FOUND,
                [(header::LOCATION, location.to_string())],
            )
                .into_response()
        };
        let refuse = |error: &str, description: &str| {
            redirect(&[("error", error), ("error_description", description)])
        };
        if params.one("response_type") != Ok(Some("code")) {
            return refuse("unsupported_response_type", "response_type must be code");
        }
        if !client.grant_types.iter().any(|g| g == "authorization_code") {
            return refuse("unauthorized_client", "the client may not use this grant");
        }
        let (Ok(Some(challenge)), Ok(Some("S256"))) = (
            params.one("code_challenge"),
            params.one("code_challenge_method"),
        ) else {
            return refuse(
                "invalid_request",
                "PKCE is required: code_challenge with code_challenge_method S256",
            );
        };
        let Ok(scopes) = params.scopes() else {
            return refuse("invalid_request", "scope is repeated");
        };
        if !oauth.allows(client, &scopes) {
            return refuse("invalid_scope", "the client may not have this scope");
        }
        let code = random_token();
        let pending = PendingCode {
            client_id: client.id.clone(),
            redirect_uri: redirect_uri.clone(),
            code_challenge: challenge.to_owned(),
            scopes,
            resources: params.all("resource").map(str::to_owned).collect(),
            issued_at: SystemClock.now().as_secs(),
        };
        oauth.codes.insert(code.clone(), pending);
        redirect(&[("code", &code)])
    })
}

/// `POST /oauth/token`: `client_credentials` or `authorization_code`.
pub(in crate::testing) async fn token(
    State(state): State<Arc<IssuerState>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let params = Params::parse(&body);
    let signer = TokenSigner::of(&state);
    with_oauth(&state, |oauth| {
        let client = match authenticated_client(oauth, &headers, &params) {
            Ok(client) => client,
            Err(refusal) => return refusal.into_response(),
        };
        let (grant_type, subject, scopes, resources) = match params.one("grant_type") {
            Ok(Some("client_credentials")) => {
                if client.secret.is_none()
                    || !client.grant_types.iter().any(|g| g == "client_credentials")
                {
                    return oauth_error(
                        StatusCode::BAD_REQUEST,
                        "unauthorized_client",
                        "the client may not use client_credentials",
                    );
                }
                let Ok(scopes) = params.scopes() else {
                    return oauth_error(
                        StatusCode::BAD_REQUEST,
                        "invalid_request",
                        "repeated scope",
                    );
                };
                if !oauth.allows(&client, &scopes) {
                    return oauth_error(
                        StatusCode::BAD_REQUEST,
                        "invalid_scope",
                        "the client may not have this scope",
                    );
                }
                let resources = params.all("resource").map(str::to_owned).collect();
                ("client_credentials", client.id.clone(), scopes, resources)
            }
            Ok(Some("authorization_code")) => match exchange_code(oauth, &client, &params) {
                Ok((scopes, resources)) => (
                    "authorization_code",
                    oauth.settings.user.clone(),
                    scopes,
                    resources,
                ),
                Err(refusal) => return refusal.into_response(),
            },
            _ => {
                return oauth_error(
                    StatusCode::BAD_REQUEST,
                    "unsupported_grant_type",
                    "grant_type is client_credentials or authorization_code",
                );
            }
        };
        let user_claims = if grant_type == "authorization_code" {
            oauth.settings.user_claims.clone()
        } else {
            serde_json::Map::new()
        };
        let access_token = signer.sign(&subject, &client.id, &scopes, &resources, user_claims);
        oauth.grants.push(Grant {
            grant_type: grant_type.to_owned(),
            client_id: client.id.clone(),
            scopes: scopes.clone(),
            resources,
            sub: subject,
        });
        let mut answer = json!({
            "access_token": access_token,
            "token_type": "Bearer",
            "expires_in": 3600,
        });
        if !scopes.is_empty() {
            answer["scope"] = json!(scopes.join(" "));
        }
        json_answer(StatusCode::OK, answer)
    })
}

/// The client a token request comes from: HTTP Basic, `client_secret` in
/// the form, or a public client by its `client_id` alone.
fn authenticated_client(
    oauth: &OAuthState,
    headers: &HeaderMap,
    params: &Params,
) -> Result<Client, Refusal> {
    let invalid = || Refusal::new("invalid_client", "client authentication failed");
    let basic = headers
        .get(header::AUTHORIZATION)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.strip_prefix("Basic "))
        .map(|encoded| {
            let decoded = STANDARD.decode(encoded.trim()).ok()?;
            let decoded = String::from_utf8(decoded).ok()?;
            let (id, secret) = decoded.split_once(':')?;
            let decode = |part: &str| {
                url::form_urlencoded::parse(format!("x={part}").as_bytes())
                    .next()
                    .map(|(_, value)| value.into_owned())
            };
            Some((decode(id)?, Some(decode(secret)?)))
        });
    let (id, secret) = match basic {
        Some(Some(credentials)) => credentials,
        Some(None) => return Err(invalid()),
        None => {
            let (Ok(Some(id)), Ok(secret)) = (params.one("client_id"), params.one("client_secret"))
            else {
                return Err(invalid());
            };
            (id.to_owned(), secret.map(str::to_owned))
        }
    };
    let client = oauth.clients.get(&id).ok_or_else(invalid)?;
    if client.secret != secret {
        return Err(invalid());
    }
    Ok(client.clone())
}

/// Redeems an authorization code: its scopes and resources, once.
fn exchange_code(
    oauth: &mut OAuthState,
    client: &Client,
    params: &Params,
) -> Result<(Vec<String>, Vec<String>), Refusal> {
    let invalid_grant = |description| Refusal::new("invalid_grant", description);
    let (Ok(Some(code)), Ok(Some(verifier)), Ok(redirect_uri)) = (
        params.one("code"),
        params.one("code_verifier"),
        params.one("redirect_uri"),
    ) else {
        return Err(Refusal::new(
            "invalid_request",
            "code and code_verifier are required once",
        ));
    };
    // A code is used once, whatever the outcome.
    let Some(pending) = oauth.codes.remove(code) else {
        return Err(invalid_grant("unknown or used code"));
    };
    if pending.client_id != client.id {
        return Err(invalid_grant("the code was issued to another client"));
    }
    if redirect_uri.is_some_and(|uri| uri != pending.redirect_uri) {
        return Err(invalid_grant(
            "redirect_uri differs from the authorization request",
        ));
    }
    if SystemClock.now().as_secs() > pending.issued_at + CODE_LIFETIME.as_secs() {
        return Err(invalid_grant("the code has expired"));
    }
    let well_formed = (43..=128).contains(&verifier.len())
        && verifier
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-._~".contains(&b));
    let computed = URL_SAFE_NO_PAD.encode(digest::digest(&digest::SHA256, verifier.as_bytes()));
    if !well_formed || computed != pending.code_challenge {
        return Err(invalid_grant(
            "code_verifier does not match the code_challenge",
        ));
    }
    let asked: Vec<String> = params.all("resource").map(str::to_owned).collect();
    if asked
        .iter()
        .any(|resource| !pending.resources.contains(resource))
    {
        return Err(Refusal::new(
            "invalid_target",
            "a resource was not part of the authorization request",
        ));
    }
    let resources = if asked.is_empty() {
        pending.resources
    } else {
        asked
    };
    Ok((pending.scopes, resources))
}

/// Signs access tokens with the key of the issuer's first organization.
struct TokenSigner {
    builder: TokenBuilder,
    organization: String,
}

impl TokenSigner {
    fn of(state: &IssuerState) -> Self {
        let key = state.with_keys(&state.organization, |keys| keys.signing.clone());
        let mut header = serde_json::Map::new();
        header.insert("typ".into(), json!("at+jwt"));
        header.insert("kid".into(), json!(key.kid));
        let mut claims = serde_json::Map::new();
        claims.insert("iss".into(), json!(state.issuer));
        Self {
            builder: TokenBuilder {
                key,
                header,
                claims,
            },
            organization: state.organization.clone(),
        }
    }

    fn sign(
        self,
        sub: &str,
        client_id: &str,
        scopes: &[String],
        resources: &[String],
        extra: serde_json::Map<String, Value>,
    ) -> String {
        let aud = match resources {
            [] => json!(self.organization),
            [one] => json!(one),
            several => json!(several),
        };
        let mut builder = self
            .builder
            .sub(sub)
            .audience(aud)
            .claim("client_id", client_id)
            .claim("jti", random_token())
            .expires_in(std::time::Duration::from_secs(3600));
        if !scopes.is_empty() {
            builder = builder.claim("scope", scopes.join(" "));
        }
        for (name, value) in extra {
            builder = builder.claim(&name, value);
        }
        builder.sign()
    }
}

/// 32 random bytes, base64url.
fn random_token() -> String {
    let mut bytes = [0u8; 32];
    SystemRandom::new()
        .fill(&mut bytes)
        .expect("system randomness");
    URL_SAFE_NO_PAD.encode(bytes)
}

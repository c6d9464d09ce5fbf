//! The mock authorization server's endpoints: metadata, registration and
//! authorization (the token endpoint is `grant.rs`), and what they share.

use std::sync::Arc;

use aws_lc_rs::rand::{SecureRandom, SystemRandom};
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde_json::{Value, json};

use super::{Client, OAuthState, PendingCode};
use crate::clock::{Clock, SystemClock};
use crate::testing::server::{IssuerState, lock};

/// The form (or query) parameters of a request, repeated ones kept.
pub(super) struct Params(Vec<(String, String)>);

impl Params {
    pub(super) fn parse(input: &[u8]) -> Self {
        Self(url::form_urlencoded::parse(input).into_owned().collect())
    }

    /// The one value of `name`; `Err` when it is repeated.
    pub(super) fn one<'a>(&'a self, name: &'a str) -> Result<Option<&'a str>, ()> {
        let mut values = self.all(name);
        match (values.next(), values.next()) {
            (value, None) => Ok(value),
            _ => Err(()),
        }
    }

    pub(super) fn all<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a str> + 'a {
        self.0
            .iter()
            .filter(move |(key, _)| key == name)
            .map(|(_, value)| value.as_str())
    }

    /// `scope`, split on spaces.
    pub(super) fn scopes(&self) -> Result<Vec<String>, ()> {
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
pub(super) fn with_oauth(
    state: &IssuerState,
    f: impl FnOnce(&mut OAuthState) -> Response,
) -> Response {
    match lock(&state.oauth).as_mut() {
        Some(oauth) => f(oauth),
        None => StatusCode::NOT_FOUND.into_response(),
    }
}

/// An OAuth error answer (RFC 6749 §5.2).
pub(super) fn oauth_error(status: StatusCode, error: &str, description: &str) -> Response {
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

pub(super) fn json_answer(status: StatusCode, body: Value) -> Response {
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

/// 32 random bytes, base64url.
pub(super) fn random_token() -> String {
    let mut bytes = [0u8; 32];
    SystemRandom::new()
        .fill(&mut bytes)
        .expect("system randomness");
    URL_SAFE_NO_PAD.encode(bytes)
}

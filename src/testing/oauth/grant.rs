//! The mock authorization server's token endpoint: client authentication,
//! the `client_credentials` and `authorization_code` grants, and the access
//! tokens it signs.

use std::sync::Arc;

use aws_lc_rs::digest;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use serde_json::{Value, json};

use super::endpoints::{Params, json_answer, oauth_error, random_token, with_oauth};
use super::{CODE_LIFETIME, Client, Grant, OAuthState};
use crate::clock::{Clock, SystemClock};
use crate::testing::server::IssuerState;
use crate::testing::token::TokenBuilder;

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

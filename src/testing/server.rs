//! The mock issuer's state and the HTTP endpoints serving it: the JWKS of
//! each organization, the discovery document, and the [`Fault`]s a test can
//! make the JWKS answer with.

use std::collections::BTreeMap;
use std::io;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use serde_json::{Value, json};

use super::key::MockKey;
use super::oauth::OAuthState;

/// How the mock issuer misbehaves when asked for its JWKS.
///
/// Every fault still counts the request in
/// [`fetch_count`](super::MockIssuer::fetch_count).
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

/// One organization's keys: the published ones and the one signing now.
pub(super) struct OrganizationKeys {
    /// Every key ever generated, published or not.
    pub(super) generated: Vec<MockKey>,
    pub(super) published: Vec<MockKey>,
    pub(super) signing: MockKey,
    pub(super) fetches: usize,
}

pub(super) struct IssuerState {
    pub(super) organization: String,
    pub(super) issuer: String,
    pub(super) organizations: Mutex<BTreeMap<String, OrganizationKeys>>,
    pub(super) fault: Mutex<Option<Fault>>,
    pub(super) discovery: Mutex<Option<Value>>,
    pub(super) discovery_fetches: AtomicUsize,
    pub(super) next_kid: AtomicUsize,
    /// `true` while JWKS answers are held back.
    pub(super) held: tokio::sync::watch::Sender<bool>,
    /// The OAuth authorization server, once a test turned it on.
    pub(super) oauth: Mutex<Option<OAuthState>>,
}

impl IssuerState {
    pub(super) fn new_key(&self) -> MockKey {
        let n = self.next_kid.fetch_add(1, Ordering::SeqCst);
        MockKey::generate(format!("key-{n}"))
    }

    /// Runs `f` on the keys of `organization`.
    ///
    /// # Panics
    ///
    /// If the issuer does not serve `organization` (a mistake in the test).
    pub(super) fn with_keys<T>(
        &self,
        organization: &str,
        f: impl FnOnce(&mut OrganizationKeys) -> T,
    ) -> T {
        let mut organizations = lock(&self.organizations);
        let keys = organizations.get_mut(organization).unwrap_or_else(|| {
            panic!("the mock issuer does not serve organization {organization:?}")
        });
        f(keys)
    }
}

pub(super) fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

pub(super) async fn serve_jwks(
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

pub(super) async fn serve_discovery(State(state): State<Arc<IssuerState>>) -> Response {
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

//! The session and logout endpoints of an embed route.
//!
//! `POST {prefix}/_meingpt/session` with `{"token": "…"}` makes a session:
//! the token goes, as `Authorization: Bearer`, through the session stack
//! (the route's authenticator reading that header only, and the route's
//! policy) to [`SessionEndpoint`], which answers `200 {"expiresAt": ms}`
//! and sets the cookie. `GET` on the same path answers the expiry of the
//! session the cookie holds (the first-load page checks with it that the
//! browser kept the cookie). `POST {prefix}/_meingpt/logout` clears the
//! cookie.
//!
//! All three take only same-origin requests: `Sec-Fetch-Site:
//! same-origin`, or, from a browser without Fetch Metadata, an `Origin`
//! naming this host. A page elsewhere can therefore neither plant its own
//! session (and have the user work in someone else's account) nor end
//! the user's.

use std::convert::Infallible;
use std::future::{Ready, ready};
use std::marker::PhantomData;
use std::task::{Context, Poll};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use http::header::{self, HeaderValue};
use http::{HeaderMap, Method, Request, Response, StatusCode};
use http_body::Body;
use http_body_util::{BodyExt, Limited};
use meingpt_auth::{MeinGptUser, TokenSource};
use serde::Deserialize;
use tower::{Service, ServiceExt};

use super::cookie::{self, SESSION_COOKIE};
use super::{BoxError, EmbedBody, SessionFuture, plain};
use crate::outcome::Verdict;

/// The most a session request's body may hold (a token is capped at 16 KiB
/// by default).
const MAX_BODY: usize = 64 * 1024;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SessionRequest {
    token: String,
}

/// Whether a request comes from a page of this very origin.
pub fn is_same_origin(headers: &HeaderMap) -> bool {
    match headers.get("sec-fetch-site") {
        Some(site) => site == "same-origin",
        None => {
            let (Some(origin), Some(host)) =
                (headers.get(header::ORIGIN), headers.get(header::HOST))
            else {
                return false;
            };
            origin
                .as_bytes()
                .split(|b| *b == b'/')
                .nth(2)
                .is_some_and(|authority| authority.eq_ignore_ascii_case(host.as_bytes()))
        }
    }
}

/// Answers the session endpoint: checks the request, then sends it on to
/// the session stack `session` with the token in `Authorization`.
pub(super) fn serve<T, ReqBody, ResBody>(
    request: Request<ReqBody>,
    session: T,
) -> SessionFuture<EmbedBody<ResBody>>
where
    T: Service<Request<ReqBody>, Response = Response<ResBody>, Error = Infallible> + Send + 'static,
    T::Future: Send,
    ReqBody: Body + Default + Send + 'static,
    ReqBody::Data: Send,
    ReqBody::Error: Into<BoxError>,
    ResBody: Send + 'static,
{
    Box::pin(async move {
        if !is_same_origin(request.headers()) {
            return refused();
        }
        let (mut parts, body) = request.into_parts();
        let token = match parts.method {
            Method::POST => {
                if !is_json(&parts.headers) {
                    return plain(
                        StatusCode::UNSUPPORTED_MEDIA_TYPE,
                        "send the token as application/json\n",
                    );
                }
                let Ok(collected) = Limited::new(body, MAX_BODY).collect().await else {
                    return plain(StatusCode::BAD_REQUEST, "unreadable request body\n");
                };
                match serde_json::from_slice::<SessionRequest>(&collected.to_bytes()) {
                    Ok(request) => Some(request.token),
                    Err(_) => {
                        return plain(StatusCode::BAD_REQUEST, "expected {\"token\": \"…\"}\n");
                    }
                }
            }
            Method::GET | Method::HEAD => {
                match TokenSource::Cookie(SESSION_COOKIE.to_owned()).find(&parts.headers) {
                    Ok(token) => token.map(str::to_owned),
                    Err(_) => None,
                }
            }
            _ => return plain(StatusCode::METHOD_NOT_ALLOWED, "method not allowed\n"),
        };
        // The session stack reads `Authorization` only: exactly this token.
        parts.headers.remove(header::AUTHORIZATION);
        parts.headers.remove(header::COOKIE);
        if let Some(token) = token {
            match HeaderValue::try_from(format!("Bearer {token}")) {
                Ok(value) => {
                    parts.headers.insert(header::AUTHORIZATION, value);
                }
                Err(_) => return plain(StatusCode::BAD_REQUEST, "malformed token\n"),
            }
        }
        let request = Request::from_parts(parts, ReqBody::default());
        match session.oneshot(request).await {
            Ok(response) => response.map(EmbedBody::inner),
            Err(never) => match never {},
        }
    })
}

fn is_json(headers: &HeaderMap) -> bool {
    headers.get(header::CONTENT_TYPE).is_some_and(|value| {
        let essence = value.as_bytes().split(|b| *b == b';').next().unwrap_or(b"");
        essence
            .trim_ascii()
            .eq_ignore_ascii_case(b"application/json")
    })
}

/// Answers the logout endpoint.
pub(super) fn logout<ReqBody, ResBody>(request: &Request<ReqBody>) -> Response<EmbedBody<ResBody>> {
    if request.method() != Method::POST {
        return plain(StatusCode::METHOD_NOT_ALLOWED, "method not allowed\n");
    }
    if !is_same_origin(request.headers()) {
        return refused();
    }
    let mut response = Response::new(EmbedBody::default());
    *response.status_mut() = StatusCode::NO_CONTENT;
    let headers = response.headers_mut();
    headers.insert(header::SET_COOKIE, cookie::cleared());
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    Verdict::Endpoint.mark(response)
}

fn refused<B>() -> Response<EmbedBody<B>> {
    Verdict::CrossSite.mark(plain(
        StatusCode::FORBIDDEN,
        "only a page of this app may make or end its session\n",
    ))
}

/// The session endpoint proper, behind the route's authenticator (reading
/// `Authorization` only) and policy: sets the cookie for the verified
/// token (`POST`), or tells the session's expiry (`GET`).
pub struct SessionEndpoint<ResBody> {
    body: PhantomData<fn() -> ResBody>,
}

impl<ResBody> SessionEndpoint<ResBody> {
    /// The endpoint, answering with `ResBody`.
    pub fn new() -> Self {
        Self { body: PhantomData }
    }
}

impl<ResBody> Default for SessionEndpoint<ResBody> {
    fn default() -> Self {
        Self::new()
    }
}

impl<ResBody> Clone for SessionEndpoint<ResBody> {
    fn clone(&self) -> Self {
        Self::new()
    }
}

impl<ResBody> std::fmt::Debug for SessionEndpoint<ResBody> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SessionEndpoint")
    }
}

impl<ReqBody, ResBody> Service<Request<ReqBody>> for SessionEndpoint<ResBody>
where
    ResBody: From<String> + Default,
{
    type Response = Response<ResBody>;
    type Error = Infallible;
    type Future = Ready<Result<Response<ResBody>, Infallible>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: Request<ReqBody>) -> Self::Future {
        ready(Ok(answer(&request)))
    }
}

fn answer<ReqBody, ResBody: From<String> + Default>(
    request: &Request<ReqBody>,
) -> Response<ResBody> {
    let Some(user) = request.extensions().get::<MeinGptUser>() else {
        return text(
            StatusCode::INTERNAL_SERVER_ERROR,
            "the session endpoint needs the route's authenticator in front of it",
        );
    };
    let expires_at = user.expires_at();
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let remaining = u64::try_from(expires_at).unwrap_or(0).saturating_sub(now);
    let mut response = Response::new(ResBody::from(
        serde_json::json!({ "expiresAt": expires_at.saturating_mul(1000) }).to_string(),
    ));
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    if request.method() == Method::POST {
        let token = request
            .headers()
            .get(header::AUTHORIZATION)
            .and_then(|value| value.to_str().ok())
            .and_then(|value| value.strip_prefix("Bearer "));
        let cookie = token
            .filter(|_| remaining > 0)
            .and_then(|token| cookie::session(token, Duration::from_secs(remaining)));
        let Some(cookie) = cookie else {
            return text(StatusCode::UNAUTHORIZED, "the token expires now");
        };
        response.headers_mut().insert(header::SET_COOKIE, cookie);
    }
    Verdict::Allowed.mark(response)
}

fn text<ResBody: From<String>>(status: StatusCode, message: &str) -> Response<ResBody> {
    let mut response = Response::new(ResBody::from(format!("{message}\n")));
    *response.status_mut() = status;
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    Verdict::Endpoint.mark(response)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            map.append(*name, HeaderValue::from_static(value));
        }
        map
    }

    #[test]
    fn only_this_origin_is_same_origin() {
        assert!(is_same_origin(&headers(&[(
            "sec-fetch-site",
            "same-origin"
        )])));
        assert!(!is_same_origin(&headers(&[(
            "sec-fetch-site",
            "same-site"
        )])));
        assert!(!is_same_origin(&headers(&[(
            "sec-fetch-site",
            "cross-site"
        )])));
        assert!(!is_same_origin(&headers(&[("sec-fetch-site", "none")])));
        // Fetch Metadata wins over a matching Origin.
        assert!(!is_same_origin(&headers(&[
            ("sec-fetch-site", "cross-site"),
            ("origin", "https://app.example"),
            ("host", "app.example"),
        ])));
        assert!(is_same_origin(&headers(&[
            ("origin", "https://app.example:8443"),
            ("host", "app.example:8443"),
        ])));
        assert!(!is_same_origin(&headers(&[
            ("origin", "https://evil.example"),
            ("host", "app.example"),
        ])));
        // Neither header: not a page of this origin (nor any page).
        assert!(!is_same_origin(&headers(&[("host", "app.example")])));
        assert!(!is_same_origin(&headers(&[
            ("origin", "null"),
            ("host", "app.example")
        ])));
    }
}

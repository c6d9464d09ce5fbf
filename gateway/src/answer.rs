//! The gateway's own answers (the endpoints, refusals, upstream failures:
//! short plain text, each with its [`Verdict`]), and the body type every
//! request and response inside the gateway carries.

use http::header::{self, HeaderValue};
use http::{Response, StatusCode};

use crate::admission::Refusal;
use crate::outcome::Verdict;

/// The body type of every request and response inside the gateway.
pub(crate) type Body = axum::body::Body;

/// A short plain-text answer from the gateway itself.
pub(crate) fn plain(status: StatusCode, body: &'static str) -> Response<Body> {
    let mut response = Response::new(Body::from(body));
    *response.status_mut() = status;
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    response
}

/// The `400` for a request the gateway cannot decide on: one fixed line
/// that names the reason (`bad request: the path has an empty segment`).
///
/// Plain text, not RFC 6750's `invalid_request`: nothing is wrong with the
/// credentials, and a `WWW-Authenticate` challenge would send a client off
/// to fetch another token for a request no token can make acceptable.
pub(crate) fn refused(refusal: Refusal) -> Response<Body> {
    let mut response = plain(StatusCode::BAD_REQUEST, "");
    *response.body_mut() = Body::from(format!("bad request: {refusal}\n"));
    response
        .headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    Verdict::BadRequest(refusal).mark(response)
}

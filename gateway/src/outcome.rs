//! What became of a request, as the access log writes it and the metrics
//! count it. Nothing here is read from a status code.
//!
//! Every answer carries its verdict in the response's extensions, put there
//! by whoever decided:
//!
//! - the crate's refusals (the auth layer, a policy guard) carry their
//!   [`AuthError`];
//! - everything else carries the gateway's own [`Verdict`]: the proxy
//!   (allowed, public, body too large, upstream failures), forward auth's
//!   answer (allowed, public), admission's refusals, the endpoints.
//!
//! [`Verdict::of`] reads them, the crate's first. The gateway's dispatch
//! adds [`Dispatched`]: which job the request was, for which route, and for
//! forward auth the original request's method.

use std::sync::Arc;

use http::{Extensions, Method, Response};
use meingpt_auth::AuthError;

use crate::admission::Refusal;

/// Which of the gateway's jobs a request was.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Mode {
    /// Reverse proxy.
    Proxy,
    /// Forward-auth sub-request.
    ForwardAuth,
    /// The gateway's own endpoints.
    Endpoint,
}

impl Mode {
    /// Every mode, in [`index`](Self::index) order.
    pub(crate) const ALL: [Mode; 3] = [Mode::Proxy, Mode::ForwardAuth, Mode::Endpoint];

    /// The position in [`ALL`](Self::ALL).
    pub(crate) fn index(self) -> usize {
        match self {
            Mode::Proxy => 0,
            Mode::ForwardAuth => 1,
            Mode::Endpoint => 2,
        }
    }

    /// The label value.
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Mode::Proxy => "proxy",
            Mode::ForwardAuth => "forward_auth",
            Mode::Endpoint => "endpoint",
        }
    }
}

/// Why an upstream request failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum UpstreamFailure {
    /// Could not connect (or the connect timed out): `502`.
    Connect,
    /// No response headers in time: `504`.
    Timeout,
    /// Any other failure while exchanging the request: `502`.
    Other,
    /// The response broke off after its headers: the client's answer is cut.
    Broken,
}

impl UpstreamFailure {
    /// Every kind, in [`index`](Self::index) order.
    pub(crate) const ALL: [UpstreamFailure; 4] = [
        UpstreamFailure::Connect,
        UpstreamFailure::Timeout,
        UpstreamFailure::Other,
        UpstreamFailure::Broken,
    ];

    /// The position in [`ALL`](Self::ALL).
    pub(crate) fn index(self) -> usize {
        match self {
            UpstreamFailure::Connect => 0,
            UpstreamFailure::Timeout => 1,
            UpstreamFailure::Other => 2,
            UpstreamFailure::Broken => 3,
        }
    }

    /// The label value.
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            UpstreamFailure::Connect => "connect",
            UpstreamFailure::Timeout => "timeout",
            UpstreamFailure::Other => "other",
            UpstreamFailure::Broken => "broken",
        }
    }
}

/// What the gateway decided about a request, or what the crate's refusal
/// stands for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Verdict {
    /// A signed-in user passed the route's policy.
    Allowed,
    /// A public route: no authentication.
    Public,
    /// The crate refused: no token, a bad one, or too old an
    /// authentication (`401`).
    Unauthenticated,
    /// The crate refused: the user lacks the route's role or team (`403`).
    Forbidden,
    /// The crate refused: malformed credentials (`400 invalid_request`).
    InvalidRequest,
    /// The crate refused: the issuer's keys could not be had (`503`).
    Unavailable,
    /// Refused before any decision (`400`): the path, forward auth's
    /// original request, or `Host`.
    BadRequest(Refusal),
    /// No route matches (`404`).
    NoRoute,
    /// Forward auth asked by a peer outside `trusted_proxies` (`403`).
    UntrustedProxy,
    /// An embed route's session used from another site, or an unsafe
    /// request that is not same-origin (`403`).
    CrossSite,
    /// The request body is over `max_body_bytes` (`413`).
    BodyTooLarge,
    /// The upstream failed before its response headers: `504` when it
    /// timed out, `502` otherwise.
    UpstreamFailed(UpstreamFailure),
    /// Answered by the gateway itself: `/healthz`, `/readyz`, the meinGPT
    /// stand-in, an embed route's script, logout and session endpoints
    /// (when they answer themselves, not through the crate's refusal).
    Endpoint,
    /// An answer that carries no verdict (none is expected: every part of
    /// the gateway that answers says why).
    Unknown,
}

impl Verdict {
    /// Every label, in [`index`](Self::index) order.
    pub(crate) const LABELS: [&'static str; 15] = [
        "allowed",
        "public",
        "unauthenticated",
        "forbidden",
        "invalid_request",
        "unavailable",
        "bad_request",
        "no_route",
        "untrusted_proxy",
        "cross_site",
        "body_too_large",
        "upstream_failed",
        "upstream_timeout",
        "endpoint",
        "unknown",
    ];

    /// The position of this verdict's label in [`LABELS`](Self::LABELS).
    pub(crate) fn index(self) -> usize {
        match self {
            Verdict::Allowed => 0,
            Verdict::Public => 1,
            Verdict::Unauthenticated => 2,
            Verdict::Forbidden => 3,
            Verdict::InvalidRequest => 4,
            Verdict::Unavailable => 5,
            Verdict::BadRequest(_) => 6,
            Verdict::NoRoute => 7,
            Verdict::UntrustedProxy => 8,
            Verdict::CrossSite => 9,
            Verdict::BodyTooLarge => 10,
            Verdict::UpstreamFailed(UpstreamFailure::Timeout) => 12,
            Verdict::UpstreamFailed(_) => 11,
            Verdict::Endpoint => 13,
            Verdict::Unknown => 14,
        }
    }

    /// The label value.
    pub(crate) fn as_str(self) -> &'static str {
        Self::LABELS[self.index()]
    }

    /// What a refusal of the crate stands for.
    pub(crate) fn refused(error: &AuthError) -> Self {
        match error {
            AuthError::MissingToken
            | AuthError::InvalidToken(_)
            | AuthError::InsufficientUserAuthentication { .. } => Verdict::Unauthenticated,
            AuthError::InsufficientScope => Verdict::Forbidden,
            AuthError::InvalidRequest(_) => Verdict::InvalidRequest,
            AuthError::KeysUnavailable { .. } => Verdict::Unavailable,
            // A refusal this gateway does not know yet: the crate said no,
            // and every other refusal without a role or a key problem is
            // about the credentials.
            _ => Verdict::Unauthenticated,
        }
    }

    /// The verdict a response carries, with the reason the access log
    /// names: the crate's refusal ([`AuthError`]) if there is one, else the
    /// gateway's own verdict.
    pub(crate) fn of(extensions: &Extensions) -> (Self, Option<&'static str>) {
        if let Some(error) = extensions.get::<AuthError>() {
            let reason = match error {
                AuthError::InvalidToken(reason) => Some(reason.code()),
                AuthError::InvalidRequest(reason) => Some(reason.description()),
                _ => None,
            };
            return (Self::refused(error), reason);
        }
        match extensions.get::<Verdict>() {
            Some(verdict) => (*verdict, verdict.reason()),
            None => (Verdict::Unknown, None),
        }
    }

    /// Why, for the verdicts that have more than one cause.
    fn reason(self) -> Option<&'static str> {
        match self {
            Verdict::BadRequest(refusal) => Some(refusal.description()),
            Verdict::UpstreamFailed(failure) => Some(failure.as_str()),
            _ => None,
        }
    }

    /// Puts this verdict into `response`'s extensions.
    pub(crate) fn mark<B>(self, mut response: Response<B>) -> Response<B> {
        response.extensions_mut().insert(self);
        response
    }
}

/// Where the gateway's dispatch sent a request.
#[derive(Debug, Clone)]
pub(crate) struct Dispatched {
    /// Which job the request was.
    pub(crate) mode: Mode,
    /// The matched route's prefix.
    pub(crate) route: Option<Arc<str>>,
    /// For forward auth, the method of the request it was about.
    pub(crate) original_method: Option<Method>,
}

impl Dispatched {
    /// A request dispatched to `mode`, for `route`.
    pub(crate) fn new(mode: Mode, route: Option<Arc<str>>) -> Self {
        Self {
            mode,
            route,
            original_method: None,
        }
    }

    /// Puts this into `response`'s extensions.
    pub(crate) fn mark<B>(self, mut response: Response<B>) -> Response<B> {
        response.extensions_mut().insert(self);
        response
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_verdict_has_its_own_label_index() {
        let verdicts = [
            Verdict::Allowed,
            Verdict::Public,
            Verdict::Unauthenticated,
            Verdict::Forbidden,
            Verdict::InvalidRequest,
            Verdict::Unavailable,
            Verdict::BadRequest(Refusal::DotSegment),
            Verdict::NoRoute,
            Verdict::UntrustedProxy,
            Verdict::CrossSite,
            Verdict::BodyTooLarge,
            Verdict::UpstreamFailed(UpstreamFailure::Connect),
            Verdict::UpstreamFailed(UpstreamFailure::Timeout),
            Verdict::Endpoint,
            Verdict::Unknown,
        ];
        let indices: Vec<usize> = verdicts.iter().map(|v| v.index()).collect();
        assert_eq!(indices, (0..Verdict::LABELS.len()).collect::<Vec<_>>());
        for (index, mode) in Mode::ALL.iter().enumerate() {
            assert_eq!(mode.index(), index);
        }
        for (index, failure) in UpstreamFailure::ALL.iter().enumerate() {
            assert_eq!(failure.index(), index);
        }
    }

    #[test]
    fn the_crates_refusal_wins_over_any_verdict_of_the_gateway() {
        let mut extensions = Extensions::new();
        extensions.insert(Verdict::Allowed);
        extensions.insert(AuthError::InsufficientScope);
        assert_eq!(Verdict::of(&extensions), (Verdict::Forbidden, None));

        let mut extensions = Extensions::new();
        extensions.insert(AuthError::from(meingpt_auth::InvalidToken::Expired));
        assert_eq!(
            Verdict::of(&extensions),
            (Verdict::Unauthenticated, Some("expired"))
        );

        let mut extensions = Extensions::new();
        extensions.insert(Verdict::UpstreamFailed(UpstreamFailure::Timeout));
        assert_eq!(
            Verdict::of(&extensions),
            (
                Verdict::UpstreamFailed(UpstreamFailure::Timeout),
                Some("timeout")
            )
        );
        assert_eq!(Verdict::of(&Extensions::new()), (Verdict::Unknown, None));
    }
}

//! What the crate counts, through the [`metrics`](https://docs.rs/metrics)
//! facade (feature `metrics`; the README's "Metrics" section lists every
//! metric).
//!
//! Each function here is one call site's worth of recording. Without the
//! feature they are empty and compile to nothing; with it but no recorder
//! installed, the facade's no-op recorder makes them a few loads. Metric
//! names and label values on the request path are string literals, so a
//! request neither allocates nor formats anything for metrics. Labels never
//! carry request data (token, `kid`, user, e-mail).

#[cfg(feature = "metrics")]
use std::time::Instant;

use crate::error::AuthError;

/// Records a counter increment whose label value is picked by a `match`,
/// one literal per arm, so the key is built from static parts.
#[cfg(feature = "metrics")]
macro_rules! increment {
    ($name:tt, $label:tt, $value:expr, { $($variant:pat => $text:tt),* $(,)? }) => {
        match $value {
            $($variant => ::metrics::counter!($name, $label => $text).increment(1),)*
        }
    };
}

/// The layer let a request through: with a user, or anonymously (optional
/// layer, no token).
#[inline]
pub(crate) fn request_admitted(authenticated: bool) {
    #[cfg(feature = "metrics")]
    increment!("meingpt_auth_requests_total", "outcome", authenticated, {
        true => "ok",
        false => "anonymous",
    });
    #[cfg(not(feature = "metrics"))]
    let _ = authenticated;
}

/// The layer or a guard refused a request with `error`.
#[inline]
pub(crate) fn request_refused(error: &AuthError) {
    #[cfg(feature = "metrics")]
    increment!("meingpt_auth_requests_total", "outcome", error, {
        AuthError::MissingToken => "unauthorized",
        AuthError::InvalidRequest(_) => "invalid_request",
        AuthError::InvalidToken(_) => "invalid_token",
        AuthError::InsufficientScope => "insufficient_scope",
        AuthError::InsufficientUserAuthentication { .. } => "insufficient_user_authentication",
        AuthError::KeysUnavailable { .. } => "unavailable",
    });
    #[cfg(not(feature = "metrics"))]
    let _ = error;
}

/// A verified-token cache lookup: a remembered verdict was used (`hit`), or
/// the token had to be verified (`miss`).
#[inline]
pub(crate) fn verified_token_cache(hit: bool) {
    #[cfg(feature = "metrics")]
    increment!("meingpt_auth_verified_token_cache_total", "result", hit, {
        true => "hit",
        false => "miss",
    });
    #[cfg(not(feature = "metrics"))]
    let _ = hit;
}

/// Keys past their TTL were used because the issuer's last fetch failed.
#[inline]
pub(crate) fn stale_keys_served() {
    #[cfg(feature = "metrics")]
    ::metrics::counter!("meingpt_auth_stale_keys_served_total").increment(1);
}

/// What a key fetch fetched.
#[derive(Debug, Clone, Copy)]
pub(crate) enum FetchKind {
    /// A JWKS.
    Jwks,
    /// An OpenID Connect discovery document.
    Discovery,
}

/// How a key fetch ended.
#[derive(Debug, Clone, Copy)]
pub(crate) enum FetchResult {
    Ok,
    /// The issuer answered with a status other than `200`.
    Status,
    Timeout,
    /// The answer was larger than the size cap.
    TooLarge,
    /// Connection, TLS or protocol failure.
    Transport,
    /// The answer was not a well-formed document of its kind.
    Malformed,
}

/// Times the fetches of one key set refresh (a discovery document, then a
/// JWKS). Empty without the feature.
#[derive(Debug, Default)]
pub(crate) struct FetchTimer {
    #[cfg(feature = "metrics")]
    in_flight: Option<(FetchKind, Instant)>,
}

impl FetchTimer {
    /// A fetch of `kind` starts now.
    #[inline]
    pub(crate) fn start(&mut self, kind: FetchKind) {
        #[cfg(feature = "metrics")]
        {
            self.in_flight = Some((kind, Instant::now()));
        }
        #[cfg(not(feature = "metrics"))]
        let _ = kind;
    }

    /// The fetch in flight ended with `result`: counts it and records how
    /// long it took.
    #[inline]
    pub(crate) fn finish(&mut self, result: FetchResult) {
        #[cfg(feature = "metrics")]
        if let Some((kind, started)) = self.in_flight.take() {
            let kind = match kind {
                FetchKind::Jwks => "jwks",
                FetchKind::Discovery => "discovery",
            };
            let result = match result {
                FetchResult::Ok => "ok",
                FetchResult::Status => "status",
                FetchResult::Timeout => "timeout",
                FetchResult::TooLarge => "too_large",
                FetchResult::Transport => "transport",
                FetchResult::Malformed => "malformed",
            };
            // Fetches are rare: the label vector built here is no cost.
            ::metrics::counter!(
                "meingpt_auth_jwks_fetches_total",
                "kind" => kind,
                "result" => result
            )
            .increment(1);
            ::metrics::histogram!("meingpt_auth_jwks_fetch_duration_seconds", "kind" => kind)
                .record(started.elapsed().as_secs_f64());
        }
        #[cfg(not(feature = "metrics"))]
        let _ = result;
    }
}

/// The `source` label of one key source (its configured URL), made once.
#[derive(Debug, Clone)]
pub(crate) struct SourceLabel {
    #[cfg(feature = "metrics")]
    url: ::metrics::SharedString,
}

impl SourceLabel {
    pub(crate) fn new(url: &str) -> Self {
        #[cfg(feature = "metrics")]
        {
            let url: std::sync::Arc<str> = url.into();
            Self { url: url.into() }
        }
        #[cfg(not(feature = "metrics"))]
        {
            let _ = url;
            Self {}
        }
    }
}

/// A fetch brought `count` usable keys for `source`.
#[inline]
pub(crate) fn keys(source: &SourceLabel, count: usize) {
    #[cfg(feature = "metrics")]
    ::metrics::gauge!("meingpt_auth_keys", "source" => source.url.clone()).set(count as f64);
    #[cfg(not(feature = "metrics"))]
    let _ = (source, count);
}

//! Middleware that writes one access-log line per request and counts its
//! verdict: method, path without the query string, route, mode, status,
//! verdict and its reason, latency (for forward auth, the original
//! request's method when the proxy sends it). The verdict is the one the
//! response carries (the crate's refusal or the gateway's own, see
//! [`crate::outcome`]), never guessed from the status. Never a token, a
//! query string or an e-mail address: path segments that look like an
//! address are logged as `[redacted]`.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Instant;

use http::{Request, Response};
use tower::{Layer, Service};

use crate::metrics::Metrics;
use crate::outcome::{Dispatched, Mode, Verdict};

/// Applies [`AccessLog`]. See the [module docs](self).
#[derive(Debug, Clone)]
pub(crate) struct AccessLogLayer {
    metrics: Arc<Metrics>,
}

impl AccessLogLayer {
    /// Logs requests and counts verdicts in `metrics`.
    pub(crate) fn new(metrics: Arc<Metrics>) -> Self {
        Self { metrics }
    }
}

impl<S> Layer<S> for AccessLogLayer {
    type Service = AccessLog<S>;

    fn layer(&self, inner: S) -> Self::Service {
        AccessLog {
            inner,
            metrics: self.metrics.clone(),
        }
    }
}

/// Middleware that logs every request. See the [module docs](self).
#[derive(Debug, Clone)]
pub(crate) struct AccessLog<S> {
    inner: S,
    metrics: Arc<Metrics>,
}

impl<S, ReqBody, ResBody> Service<Request<ReqBody>> for AccessLog<S>
where
    S: Service<Request<ReqBody>, Response = Response<ResBody>> + Clone + Send + 'static,
    S::Future: Send + 'static,
    ReqBody: Send + 'static,
{
    type Response = Response<ResBody>;
    type Error = S::Error;
    type Future = Pin<Box<dyn Future<Output = Result<Response<ResBody>, S::Error>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request<ReqBody>) -> Self::Future {
        let clone = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, clone);
        let metrics = self.metrics.clone();
        let started = Instant::now();
        let method = request.method().clone();
        let path = redacted_path(request.uri().path());
        Box::pin(async move {
            let response = inner.call(request).await?;
            let status = response.status();
            let (verdict, reason) = Verdict::of(response.extensions());
            let (mode, route, original) = match response.extensions().get::<Dispatched>() {
                Some(dispatched) => (
                    dispatched.mode,
                    dispatched.route.clone(),
                    dispatched.original_method.clone(),
                ),
                // Every answer of the gateway is dispatched; counted as
                // proxy only if one were not.
                None => (Mode::Proxy, None, None),
            };
            metrics.verdict(mode, verdict);
            // A forward-auth sub-request logs the method of the request it is about.
            let method = match (mode, original) {
                (Mode::ForwardAuth, Some(original)) => original,
                _ => method,
            };
            tracing::info!(
                target: "meingpt_gateway::access",
                method = %method,
                path = %path,
                route = route.as_deref().unwrap_or("-"),
                mode = mode.as_str(),
                status = status.as_u16(),
                verdict = verdict.as_str(),
                reason = reason.unwrap_or("-"),
                latency_ms = started.elapsed().as_secs_f64() * 1000.0,
                "request"
            );
            Ok(response)
        })
    }
}

/// The path with every segment that holds `@` (or `%40`) replaced.
fn redacted_path(path: &str) -> String {
    if !looks_like_address(path) {
        return path.to_owned();
    }
    path.split('/')
        .map(|segment| {
            if looks_like_address(segment) {
                "[redacted]"
            } else {
                segment
            }
        })
        .collect::<Vec<_>>()
        .join("/")
}

/// Whether `text` holds `@` or `%40` (which has no letters to change case).
fn looks_like_address(text: &str) -> bool {
    text.contains('@') || text.contains("%40")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn address_like_segments_are_redacted() {
        assert_eq!(redacted_path("/users/a@b.c/x"), "/users/[redacted]/x");
        assert_eq!(redacted_path("/users/a%40b.c"), "/users/[redacted]");
        assert_eq!(redacted_path("/plain/path"), "/plain/path");
    }
}

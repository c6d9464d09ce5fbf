//! Counters for Prometheus: verdicts by mode and outcome, upstream latency
//! and failures. Rendered as Prometheus text on the metrics listener only.

use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// What the gateway decided about a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// A signed-in user passed the route's policy.
    Allowed,
    /// A public route: no authentication.
    Public,
    /// No token, or a bad one: `401`.
    Unauthenticated,
    /// The user lacks the route's role or team: `403`.
    Forbidden,
    /// Malformed credentials or a refused path: `400`.
    InvalidRequest,
    /// The issuer's keys could not be had: `503`.
    Unavailable,
    /// No route matches: `404`.
    NoRoute,
    /// Answered by the gateway itself (`/healthz`, `/readyz`).
    Endpoint,
}

impl Verdict {
    const ALL: [Verdict; 8] = [
        Verdict::Allowed,
        Verdict::Public,
        Verdict::Unauthenticated,
        Verdict::Forbidden,
        Verdict::InvalidRequest,
        Verdict::Unavailable,
        Verdict::NoRoute,
        Verdict::Endpoint,
    ];

    /// The label value.
    pub fn as_str(self) -> &'static str {
        match self {
            Verdict::Allowed => "allowed",
            Verdict::Public => "public",
            Verdict::Unauthenticated => "unauthenticated",
            Verdict::Forbidden => "forbidden",
            Verdict::InvalidRequest => "invalid_request",
            Verdict::Unavailable => "unavailable",
            Verdict::NoRoute => "no_route",
            Verdict::Endpoint => "endpoint",
        }
    }

    /// The verdict a rejection with `status` stands for.
    pub fn from_rejection(status: http::StatusCode) -> Self {
        match status.as_u16() {
            401 => Verdict::Unauthenticated,
            403 => Verdict::Forbidden,
            503 => Verdict::Unavailable,
            _ => Verdict::InvalidRequest,
        }
    }
}

/// Which of the gateway's jobs a request was.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Reverse proxy.
    Proxy,
    /// Forward-auth sub-request.
    ForwardAuth,
    /// The gateway's own endpoints.
    Endpoint,
}

impl Mode {
    const ALL: [Mode; 3] = [Mode::Proxy, Mode::ForwardAuth, Mode::Endpoint];

    /// The label value.
    pub fn as_str(self) -> &'static str {
        match self {
            Mode::Proxy => "proxy",
            Mode::ForwardAuth => "forward_auth",
            Mode::Endpoint => "endpoint",
        }
    }
}

/// Why an upstream request failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UpstreamFailure {
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
    const ALL: [UpstreamFailure; 4] = [
        UpstreamFailure::Connect,
        UpstreamFailure::Timeout,
        UpstreamFailure::Other,
        UpstreamFailure::Broken,
    ];

    fn as_str(self) -> &'static str {
        match self {
            UpstreamFailure::Connect => "connect",
            UpstreamFailure::Timeout => "timeout",
            UpstreamFailure::Other => "other",
            UpstreamFailure::Broken => "broken",
        }
    }
}

/// Upper bounds (seconds) of the upstream latency histogram.
const BUCKETS: [f64; 12] = [
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 10.0,
];

/// The gateway's counters.
#[derive(Debug, Default)]
pub struct Metrics {
    verdicts: [[AtomicU64; 8]; 3],
    failures: [AtomicU64; 4],
    latency_buckets: [AtomicU64; 12],
    latency_count: AtomicU64,
    latency_micros: AtomicU64,
}

impl Metrics {
    /// Counts one verdict.
    pub fn verdict(&self, mode: Mode, verdict: Verdict) {
        let m = Mode::ALL.iter().position(|x| *x == mode).unwrap_or(0);
        let v = Verdict::ALL.iter().position(|x| *x == verdict).unwrap_or(0);
        self.verdicts[m][v].fetch_add(1, Ordering::Relaxed);
    }

    /// Records the time an upstream took to answer with headers.
    pub fn upstream_latency(&self, latency: Duration) {
        let secs = latency.as_secs_f64();
        for (bound, bucket) in BUCKETS.iter().zip(&self.latency_buckets) {
            if secs <= *bound {
                bucket.fetch_add(1, Ordering::Relaxed);
            }
        }
        self.latency_count.fetch_add(1, Ordering::Relaxed);
        let micros = u64::try_from(latency.as_micros()).unwrap_or(u64::MAX);
        self.latency_micros.fetch_add(micros, Ordering::Relaxed);
    }

    /// Counts one upstream failure.
    pub fn upstream_failure(&self, failure: UpstreamFailure) {
        let f = UpstreamFailure::ALL
            .iter()
            .position(|x| *x == failure)
            .unwrap_or(0);
        self.failures[f].fetch_add(1, Ordering::Relaxed);
    }

    /// The Prometheus text exposition of every counter.
    pub fn render(&self) -> String {
        let mut out = String::with_capacity(2048);
        out.push_str("# HELP meingpt_gateway_requests_total Requests by mode and verdict.\n");
        out.push_str("# TYPE meingpt_gateway_requests_total counter\n");
        for (m, mode) in Mode::ALL.iter().enumerate() {
            for (v, verdict) in Verdict::ALL.iter().enumerate() {
                let _ = writeln!(
                    out,
                    "meingpt_gateway_requests_total{{mode=\"{}\",verdict=\"{}\"}} {}",
                    mode.as_str(),
                    verdict.as_str(),
                    self.verdicts[m][v].load(Ordering::Relaxed)
                );
            }
        }
        out.push_str(
            "# HELP meingpt_gateway_upstream_failures_total Upstream requests that failed.\n",
        );
        out.push_str("# TYPE meingpt_gateway_upstream_failures_total counter\n");
        for (f, failure) in UpstreamFailure::ALL.iter().enumerate() {
            let _ = writeln!(
                out,
                "meingpt_gateway_upstream_failures_total{{kind=\"{}\"}} {}",
                failure.as_str(),
                self.failures[f].load(Ordering::Relaxed)
            );
        }
        out.push_str(
            "# HELP meingpt_gateway_upstream_response_seconds Time until the upstream's response headers.\n",
        );
        out.push_str("# TYPE meingpt_gateway_upstream_response_seconds histogram\n");
        let count = self.latency_count.load(Ordering::Relaxed);
        for (bound, bucket) in BUCKETS.iter().zip(&self.latency_buckets) {
            let _ = writeln!(
                out,
                "meingpt_gateway_upstream_response_seconds_bucket{{le=\"{bound}\"}} {}",
                bucket.load(Ordering::Relaxed)
            );
        }
        let _ = writeln!(
            out,
            "meingpt_gateway_upstream_response_seconds_bucket{{le=\"+Inf\"}} {count}"
        );
        let sum = self.latency_micros.load(Ordering::Relaxed) as f64 / 1e6;
        let _ = writeln!(out, "meingpt_gateway_upstream_response_seconds_sum {sum}");
        let _ = writeln!(
            out,
            "meingpt_gateway_upstream_response_seconds_count {count}"
        );
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rendered_counters_carry_their_labels() {
        let metrics = Metrics::default();
        metrics.verdict(Mode::ForwardAuth, Verdict::Forbidden);
        metrics.verdict(Mode::ForwardAuth, Verdict::Forbidden);
        metrics.upstream_latency(Duration::from_millis(3));
        let text = metrics.render();
        assert!(text.contains(
            "meingpt_gateway_requests_total{mode=\"forward_auth\",verdict=\"forbidden\"} 2\n"
        ));
        assert!(
            text.contains("meingpt_gateway_upstream_response_seconds_bucket{le=\"0.0025\"} 0\n")
        );
        assert!(
            text.contains("meingpt_gateway_upstream_response_seconds_bucket{le=\"0.005\"} 1\n")
        );
        assert!(text.contains("meingpt_gateway_upstream_response_seconds_count 1\n"));
    }
}

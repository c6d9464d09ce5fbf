//! Counters for Prometheus: requests by mode and verdict (see
//! [`crate::outcome`]), upstream latency and failures. Rendered as
//! Prometheus text on the metrics listener only.

use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use crate::outcome::{Mode, UpstreamFailure, Verdict};

/// Upper bounds (seconds) of the upstream latency histogram.
const BUCKETS: [f64; 12] = [
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 10.0,
];

/// The gateway's counters.
#[derive(Debug, Default)]
pub(crate) struct Metrics {
    verdicts: [[AtomicU64; Verdict::LABELS.len()]; Mode::ALL.len()],
    failures: [AtomicU64; UpstreamFailure::ALL.len()],
    latency_buckets: [AtomicU64; 12],
    latency_count: AtomicU64,
    latency_micros: AtomicU64,
}

impl Metrics {
    /// Counts one verdict.
    pub(crate) fn verdict(&self, mode: Mode, verdict: Verdict) {
        self.verdicts[mode.index()][verdict.index()].fetch_add(1, Ordering::Relaxed);
    }

    /// Records the time an upstream took to answer with headers.
    pub(crate) fn upstream_latency(&self, latency: Duration) {
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
    pub(crate) fn upstream_failure(&self, failure: UpstreamFailure) {
        self.failures[failure.index()].fetch_add(1, Ordering::Relaxed);
    }

    /// The Prometheus text exposition of every counter.
    pub(crate) fn render(&self) -> String {
        let mut out = String::with_capacity(2048);
        out.push_str("# HELP meingpt_gateway_requests_total Requests by mode and verdict.\n");
        out.push_str("# TYPE meingpt_gateway_requests_total counter\n");
        for (m, mode) in Mode::ALL.iter().enumerate() {
            for (v, verdict) in Verdict::LABELS.iter().enumerate() {
                let _ = writeln!(
                    out,
                    "meingpt_gateway_requests_total{{mode=\"{}\",verdict=\"{}\"}} {}",
                    mode.as_str(),
                    verdict,
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

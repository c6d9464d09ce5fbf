//! What a soak measures besides verdicts: a process's memory, and how often
//! and in which window something happened (refusals it allows, failures by
//! cause). Shared by the crate's soak (`benches/soak`) and the gateway's
//! (`gateway/bench/soak`).

use std::sync::atomic::{AtomicU64, Ordering};

/// A field of `/proc/PID/status` in KiB (`VmRSS:`, `VmHWM:`); 0 once the
/// process is gone.
pub fn rss_kib(pid: u32, field: &str) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|status| {
            status
                .lines()
                .find(|line| line.starts_with(field))
                .and_then(|line| line.split_whitespace().nth(1)?.parse().ok())
        })
        .unwrap_or(0)
}

/// How often something happened, and when first and last.
pub struct Occurrences {
    count: AtomicU64,
    /// Milliseconds since the start.
    first: AtomicU64,
    last: AtomicU64,
}

impl Default for Occurrences {
    fn default() -> Self {
        Self {
            count: AtomicU64::new(0),
            first: AtomicU64::new(u64::MAX),
            last: AtomicU64::new(0),
        }
    }
}

impl Occurrences {
    /// Counts one at `at_ms` (milliseconds since the start).
    pub fn record(&self, at_ms: u64) {
        self.count.fetch_add(1, Ordering::Relaxed);
        self.first.fetch_min(at_ms, Ordering::Relaxed);
        self.last.fetch_max(at_ms, Ordering::Relaxed);
    }

    /// How many were counted.
    pub fn count(&self) -> u64 {
        self.count.load(Ordering::Relaxed)
    }
}

/// `none`, or `N from F s to L s`.
impl std::fmt::Display for Occurrences {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.count() {
            0 => f.write_str("none"),
            count => write!(
                f,
                "{count} from {:.1} s to {:.1} s",
                self.first.load(Ordering::Relaxed) as f64 / 1000.0,
                self.last.load(Ordering::Relaxed) as f64 / 1000.0
            ),
        }
    }
}

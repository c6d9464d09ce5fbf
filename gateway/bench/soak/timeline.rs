//! The soak's clock, what happened when, and which disruption a failed
//! request falls into.

use std::sync::Mutex;
use std::time::Instant;

/// How long after a disruption ends its failures still count as its own
/// (pooled connections that went stale, nginx's `fail_timeout`, …).
pub const AFTERMATH_MS: u64 = 5_000;

/// The cause of a failure that overlaps no disruption.
pub const NO_DISRUPTION: &str = "no disruption";

pub struct Timeline {
    started: Instant,
    notes: Mutex<Vec<(u64, String)>>,
    disruptions: Mutex<Vec<Disruption>>,
}

struct Disruption {
    cause: &'static str,
    start_ms: u64,
    end_ms: Option<u64>,
}

impl Timeline {
    pub fn new() -> Self {
        Self {
            started: Instant::now(),
            notes: Mutex::default(),
            disruptions: Mutex::default(),
        }
    }

    pub fn started(&self) -> Instant {
        self.started
    }

    /// Milliseconds since the start.
    pub fn now_ms(&self) -> u64 {
        self.started.elapsed().as_millis() as u64
    }

    /// Writes `text` into the timeline, now.
    pub fn note(&self, text: impl Into<String>) {
        let at = self.now_ms();
        self.notes.lock().unwrap().push((at, text.into()));
    }

    /// A disruption begins now; `text` goes into the timeline.
    pub fn begin(&self, cause: &'static str, text: impl Into<String>) {
        let start_ms = self.now_ms();
        self.disruptions.lock().unwrap().push(Disruption {
            cause,
            start_ms,
            end_ms: None,
        });
        self.note(text);
    }

    /// The disruption `cause` ends now; `text` goes into the timeline.
    pub fn end(&self, cause: &'static str, text: impl Into<String>) {
        let now = self.now_ms();
        for disruption in self.disruptions.lock().unwrap().iter_mut() {
            if disruption.cause == cause {
                disruption.end_ms.get_or_insert(now);
            }
        }
        self.note(text);
    }

    /// The disruption a failure of a request sent at `sent_ms` and over at
    /// `done_ms` belongs to: of those it overlaps (with their aftermath),
    /// the one that began last.
    pub fn cause(&self, sent_ms: u64, done_ms: u64) -> &'static str {
        self.disruptions
            .lock()
            .unwrap()
            .iter()
            .filter(|d| {
                d.start_ms <= done_ms
                    && d.end_ms.map_or(u64::MAX, |end| end + AFTERMATH_MS) >= sent_ms
            })
            .max_by_key(|d| d.start_ms)
            .map_or(NO_DISRUPTION, |d| d.cause)
    }

    pub fn notes(&self) -> Vec<(u64, String)> {
        self.notes.lock().unwrap().clone()
    }
}

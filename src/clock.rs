//! The time source for token validity and key-cache ages.
//!
//! Production code uses [`SystemClock`]. Tests inject a clock they can move
//! (see `testing::MockClock`) instead of sleeping.

use std::fmt;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Where the verifier and the key cache read the current time from.
pub trait Clock: Send + Sync + 'static {
    /// The time since the Unix epoch.
    fn now(&self) -> Duration;
}

/// The operating system's wall clock.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> Duration {
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default()
    }
}

pub(crate) struct SharedClock(pub(crate) std::sync::Arc<dyn Clock>);

impl SharedClock {
    pub(crate) fn now(&self) -> Duration {
        self.0.now()
    }
}

impl Clone for SharedClock {
    fn clone(&self) -> Self {
        Self(self.0.clone())
    }
}

impl fmt::Debug for SharedClock {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Clock")
    }
}

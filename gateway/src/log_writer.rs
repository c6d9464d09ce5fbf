//! Where the gateway's log lines go: standard error, with the access log
//! written in batches off the request path.
//!
//! An access-log line (target `meingpt_gateway::access`) is appended to a
//! buffer in memory; a thread of its own writes the buffer out every
//! [`FLUSH_INTERVAL`], or as soon as it holds [`BATCH_BYTES`]. Any other
//! line (warnings, errors, startup) is written at once, after the access
//! lines buffered before it, so the order of all lines is kept. None is
//! lost: when the writing thread falls [`MAX_PENDING`] bytes behind (a slow
//! reader of standard error), the request's own thread writes the buffer;
//! and dropping the [`FlushGuard`] at the end of `main` writes what is left.

use std::io::{self, Write};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use tracing::Metadata;
use tracing_subscriber::fmt::MakeWriter;

/// The longest an access-log line waits in the buffer.
pub const FLUSH_INTERVAL: Duration = Duration::from_millis(100);

/// The buffer is written out as soon as it holds this many bytes.
pub const BATCH_BYTES: usize = 32 * 1024;

/// Buffered bytes at most before a request's thread writes them itself.
pub const MAX_PENDING: usize = 4 * 1024 * 1024;

/// The access log's target.
const ACCESS_TARGET: &str = "meingpt_gateway::access";

/// A [`MakeWriter`] for `tracing_subscriber::fmt`: access-log lines in
/// batches, every other line at once. See the [module docs](self).
#[derive(Clone)]
pub struct LogWriter {
    batch: Arc<Batch>,
}

impl std::fmt::Debug for LogWriter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LogWriter").finish_non_exhaustive()
    }
}

/// Writes out the buffered access-log lines when dropped. Keep it until
/// the gateway has stopped serving.
#[must_use = "dropping the guard writes out the buffered lines now"]
#[derive(Debug)]
pub struct FlushGuard {
    writer: LogWriter,
}

impl Drop for FlushGuard {
    fn drop(&mut self) {
        self.writer.batch.write_out();
    }
}

struct Batch {
    /// Lines not yet written.
    pending: Mutex<Vec<u8>>,
    /// Signalled when `pending` reaches [`BATCH_BYTES`].
    full: Condvar,
    /// Held while writing to standard error, so that batches keep their
    /// order; holds the emptied buffer of the previous batch for reuse.
    output: Mutex<Vec<u8>>,
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

impl Batch {
    /// Appends `line`; writes everything out when `now`.
    fn append(&self, line: &[u8], now: bool) {
        let len = {
            let mut pending = lock(&self.pending);
            pending.extend_from_slice(line);
            pending.len()
        };
        if now || len >= MAX_PENDING {
            self.write_out();
        } else if len >= BATCH_BYTES && len - line.len() < BATCH_BYTES {
            self.full.notify_one();
        }
    }

    /// Writes the pending lines to standard error.
    fn write_out(&self) {
        let mut output = lock(&self.output);
        {
            let mut pending = lock(&self.pending);
            if pending.is_empty() {
                return;
            }
            std::mem::swap(&mut *pending, &mut *output);
        }
        // Nothing to do about a standard error that cannot be written.
        let _ = io::stderr().lock().write_all(&output);
        output.clear();
    }

    /// The writing thread: a batch when full or every [`FLUSH_INTERVAL`].
    fn run(&self) {
        loop {
            let pending = lock(&self.pending);
            let (pending, _) = self
                .full
                .wait_timeout_while(pending, FLUSH_INTERVAL, |pending| {
                    pending.len() < BATCH_BYTES
                })
                .unwrap_or_else(PoisonError::into_inner);
            drop(pending);
            self.write_out();
        }
    }
}

impl LogWriter {
    /// A writer to standard error, its writing thread started, and the
    /// guard that writes out what is left.
    pub fn stderr() -> io::Result<(Self, FlushGuard)> {
        let batch = Arc::new(Batch {
            pending: Mutex::new(Vec::with_capacity(2 * BATCH_BYTES)),
            full: Condvar::new(),
            output: Mutex::new(Vec::with_capacity(2 * BATCH_BYTES)),
        });
        let writing = batch.clone();
        std::thread::Builder::new()
            .name("meingpt-gateway-log".to_owned())
            .spawn(move || writing.run())?;
        let writer = Self { batch };
        Ok((
            writer.clone(),
            FlushGuard {
                writer: writer.clone(),
            },
        ))
    }
}

/// One log line on its way to a [`LogWriter`].
#[derive(Debug)]
pub struct Line<'a> {
    batch: &'a Batch,
    now: bool,
}

impl std::fmt::Debug for Batch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Batch").finish_non_exhaustive()
    }
}

impl Write for Line<'_> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.batch.append(buf, self.now);
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        if self.now {
            self.batch.write_out();
        }
        Ok(())
    }
}

impl<'a> MakeWriter<'a> for LogWriter {
    type Writer = Line<'a>;

    fn make_writer(&'a self) -> Self::Writer {
        Line {
            batch: &self.batch,
            now: true,
        }
    }

    fn make_writer_for(&'a self, meta: &Metadata<'_>) -> Self::Writer {
        Line {
            batch: &self.batch,
            now: meta.target() != ACCESS_TARGET,
        }
    }
}

//! Where the gateway's log lines go: standard error, with the access log
//! written in batches off the request path, and formatted by
//! [`LineFormat`] with less work than the default format.
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

use tracing::field::{Field, Visit};
use tracing::{Event, Metadata, Subscriber};
use tracing_subscriber::fmt::format::{self, Format, FormatEvent, FormatFields};
use tracing_subscriber::fmt::{FmtContext, MakeWriter};
use tracing_subscriber::registry::LookupSpan;

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

/// The event format of `tracing_subscriber::fmt` with a quick path for
/// access-log lines: the same text as the default [`Format`] (`Full`, UTC
/// timestamps), written without its per-field machinery and with the date
/// and time to the second formatted once per second. Lines of other
/// targets, lines inside a span and colored output take the default path.
#[derive(Debug, Default)]
pub struct LineFormat {
    default: Format,
}

impl<S, N> FormatEvent<S, N> for LineFormat
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
{
    fn format_event(
        &self,
        ctx: &FmtContext<'_, S, N>,
        mut writer: format::Writer<'_>,
        event: &Event<'_>,
    ) -> std::fmt::Result {
        let meta = event.metadata();
        if meta.target() != ACCESS_TARGET
            || writer.has_ansi_escapes()
            || ctx.lookup_current().is_some()
        {
            return self.default.format_event(ctx, writer, event);
        }
        write_timestamp(&mut writer)?;
        write!(writer, " {:>5} {}: ", meta.level(), meta.target())?;
        let mut fields = Fields {
            writer: &mut writer,
            first: true,
            result: Ok(()),
        };
        event.record(&mut fields);
        fields.result?;
        writer.write_char('\n')
    }
}

/// Writes fields as the default format does: the message bare, then
/// `name=value`, strings quoted and escaped as `Debug` does.
struct Fields<'w, 'a> {
    writer: &'w mut format::Writer<'a>,
    first: bool,
    result: std::fmt::Result,
}

impl Fields<'_, '_> {
    fn name(&mut self, field: &Field) -> std::fmt::Result {
        if !std::mem::take(&mut self.first) {
            self.writer.write_char(' ')?;
        }
        if field.name() != "message" {
            self.writer.write_str(field.name())?;
            self.writer.write_char('=')?;
        }
        Ok(())
    }
}

impl Visit for Fields<'_, '_> {
    fn record_str(&mut self, field: &Field, value: &str) {
        if self.result.is_err() {
            return;
        }
        self.result = self.name(field).and_then(|()| {
            if field.name() == "message" {
                self.writer.write_str(value)
            } else if value
                .bytes()
                .all(|b| (0x20..0x7f).contains(&b) && b != b'"' && b != b'\\')
            {
                self.writer.write_char('"')?;
                self.writer.write_str(value)?;
                self.writer.write_char('"')
            } else {
                write!(self.writer, "{value:?}")
            }
        });
    }

    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        if self.result.is_err() {
            return;
        }
        self.result = self
            .name(field)
            .and_then(|()| write!(self.writer, "{value:?}"));
    }
}

/// `2026-01-31T12:34:56.123456Z`, as `tracing_subscriber`'s `SystemTime`.
fn write_timestamp(writer: &mut format::Writer<'_>) -> std::fmt::Result {
    thread_local! {
        /// The last second formatted, and its text up to the seconds.
        static SECOND: std::cell::Cell<(u64, [u8; 19])> = const { std::cell::Cell::new((u64::MAX, [0; 19])) };
    }
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    let seconds = now.as_secs();
    let (cached, mut text) = SECOND.get();
    if cached != seconds {
        text = civil_time(seconds);
        SECOND.set((seconds, text));
    }
    // Only ASCII digits and separators were written.
    writer.write_str(std::str::from_utf8(&text).unwrap_or_default())?;
    write!(writer, ".{:06}Z", now.subsec_micros())
}

/// `YYYY-MM-DDTHH:MM:SS` (UTC) of `seconds` since the Unix epoch.
fn civil_time(seconds: u64) -> [u8; 19] {
    let days = seconds / 86_400;
    let in_day = seconds % 86_400;
    // Howard Hinnant's days-to-civil, for days since 1970-01-01.
    let z = days + 719_468;
    let era = z / 146_097;
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + u64::from(month <= 2);
    let mut text = [0u8; 19];
    let mut put = |at: usize, value: u64, width: usize| {
        let mut value = value;
        for i in (0..width).rev() {
            text[at + i] = b'0' + (value % 10) as u8;
            value /= 10;
        }
    };
    put(0, year % 10_000, 4);
    put(5, month, 2);
    put(8, day, 2);
    put(11, in_day / 3600, 2);
    put(14, in_day / 60 % 60, 2);
    put(17, in_day % 60, 2);
    for (at, separator) in [(4, b'-'), (7, b'-'), (10, b'T'), (13, b':'), (16, b':')] {
        text[at] = separator;
    }
    text
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use tracing_subscriber::fmt::MakeWriter;

    use super::*;

    #[derive(Clone, Default)]
    struct Captured(Arc<Mutex<Vec<u8>>>);

    impl Write for Captured {
        fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
            lock(&self.0).extend_from_slice(buf);
            Ok(buf.len())
        }

        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    impl<'a> MakeWriter<'a> for Captured {
        type Writer = Self;

        fn make_writer(&'a self) -> Self {
            self.clone()
        }
    }

    fn access_line() {
        tracing::info!(
            target: "meingpt_gateway::access",
            method = %http::Method::GET,
            path = %"/reports/[redacted]/view",
            route = "/",
            odd = "say \"hi\"\tthere\u{e9}",
            status = 200u16,
            latency_ms = 0.25,
            "request"
        );
    }

    /// The line with its timestamp (up to the first space) cut off.
    fn formatted(quick: bool) -> String {
        let captured = Captured::default();
        let builder = tracing_subscriber::fmt()
            .with_writer(captured.clone())
            .with_ansi(false);
        if quick {
            let subscriber = builder.event_format(LineFormat::default()).finish();
            tracing::subscriber::with_default(subscriber, access_line);
        } else {
            tracing::subscriber::with_default(builder.finish(), access_line);
        }
        let line = String::from_utf8(lock(&captured.0).clone()).unwrap();
        let (timestamp, rest) = line.split_once(' ').unwrap();
        assert_eq!(
            timestamp.len(),
            "2026-01-31T12:34:56.123456Z".len(),
            "{line}"
        );
        rest.to_owned()
    }

    #[test]
    fn access_lines_read_as_the_default_format_writes_them() {
        let quick = formatted(true);
        assert_eq!(quick, formatted(false));
        assert!(
            quick.starts_with(" INFO meingpt_gateway::access: request method=GET "),
            "{quick}"
        );
    }

    #[test]
    fn civil_time_is_utc_date_and_time() {
        assert_eq!(&civil_time(0), b"1970-01-01T00:00:00");
        assert_eq!(&civil_time(951_782_400), b"2000-02-29T00:00:00");
        assert_eq!(&civil_time(1_709_251_199), b"2024-02-29T23:59:59");
        assert_eq!(&civil_time(4_102_444_800), b"2100-01-01T00:00:00");
    }
}

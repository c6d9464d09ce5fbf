//! The connection policy: every client connection is timed from accept and
//! between requests, and each serving thread holds at most its share of the
//! cap. At the cap, or out of file descriptors, the connection idle the
//! longest is asked to close to make room; one with a request in progress
//! never is (as nginx reuses its idle keep-alive connections first).
//!
//! "Idle" means no request in progress: from accept until the first
//! request's head is complete, and from the end of a response until the
//! next request's head (HTTP/1.1 keep-alive, HTTP/2 without open streams).
//! A request is in progress from its head until its response body is
//! written or dropped.

use std::collections::HashMap;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::sync::Notify;

/// How long a connection asked to close (idle too long, shed, shutdown)
/// may take to do so once no request is in progress: HTTP/2's `GOAWAY`
/// exchange, the last response's bytes still being written.
pub(crate) const CLOSE_GRACE: Duration = Duration::from_secs(1);

/// Timeouts and the cap on open client connections.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct ConnectionLimits {
    /// Open client connections at most, over all serving threads.
    pub(crate) max_connections: usize,
    /// From accept until the first request's head is complete.
    pub(crate) header_read_timeout: Duration,
    /// From the end of a response until the next request's head is complete.
    pub(crate) idle_timeout: Duration,
    /// From accept until the TLS handshake is complete.
    pub(crate) tls_handshake_timeout: Duration,
}

impl ConnectionLimits {
    /// The default cap on open client connections.
    pub(crate) const DEFAULT_MAX_CONNECTIONS: usize = 4096;
    /// The default time to the first request's head.
    pub(crate) const DEFAULT_HEADER_READ_TIMEOUT: Duration = Duration::from_secs(30);
    /// The default time a connection may wait for its next request; longer
    /// than the 60 s load balancers commonly keep an idle upstream
    /// connection, so that they never reuse one the gateway just closed.
    pub(crate) const DEFAULT_IDLE_TIMEOUT: Duration = Duration::from_secs(75);
    /// The default time for the TLS handshake.
    pub(crate) const DEFAULT_TLS_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

    /// The limits of one of `threads` serving threads: the cap divided
    /// among them (rounded up), the times unchanged.
    pub(crate) fn per_thread(self, threads: usize) -> Self {
        Self {
            max_connections: self.max_connections.div_ceil(threads.max(1)),
            ..self
        }
    }
}

impl Default for ConnectionLimits {
    fn default() -> Self {
        Self {
            max_connections: Self::DEFAULT_MAX_CONNECTIONS,
            header_read_timeout: Self::DEFAULT_HEADER_READ_TIMEOUT,
            idle_timeout: Self::DEFAULT_IDLE_TIMEOUT,
            tls_handshake_timeout: Self::DEFAULT_TLS_HANDSHAKE_TIMEOUT,
        }
    }
}

/// The open connections of one serving thread.
pub(crate) struct Connections {
    limits: ConnectionLimits,
    open: Mutex<HashMap<u64, Arc<Activity>>>,
    next_id: AtomicU64,
    /// Connection tasks still running (an upgraded connection's socket may
    /// outlive its task, in the tunnel).
    serving: AtomicUsize,
    /// Told when a connection closes or its task ends.
    changed: Notify,
}

impl Connections {
    pub(crate) fn new(limits: ConnectionLimits) -> Arc<Self> {
        Arc::new(Self {
            limits,
            open: Mutex::new(HashMap::new()),
            next_id: AtomicU64::new(0),
            serving: AtomicUsize::new(0),
            changed: Notify::new(),
        })
    }

    pub(crate) fn limits(&self) -> &ConnectionLimits {
        &self.limits
    }

    /// Registers a connection accepted now: its activity, the slot its
    /// socket holds, and the guard its task holds.
    pub(crate) fn admit(self: &Arc<Self>) -> (Arc<Activity>, Slot, Serving) {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let activity = Arc::new(Activity::new());
        self.lock().insert(id, activity.clone());
        self.serving.fetch_add(1, Ordering::AcqRel);
        let slot = Slot {
            connections: self.clone(),
            id,
        };
        let serving = Serving(self.clone());
        (activity, slot, serving)
    }

    /// Whether the thread holds its share of the cap.
    pub(crate) fn is_full(&self) -> bool {
        self.lock().len() >= self.limits.max_connections
    }

    /// Whether no connection task is running.
    pub(crate) fn is_drained(&self) -> bool {
        self.serving.load(Ordering::Acquire) == 0
    }

    /// Waits until a connection closes or a task ends (or a stored notice
    /// of an earlier one).
    pub(crate) async fn changed(&self) {
        self.changed.notified().await;
    }

    /// Asks the connection idle the longest to close, unless one asked
    /// before is still closing. Returns whether one is (now) closing.
    pub(crate) fn make_room(&self) -> bool {
        let open = self.lock();
        let mut longest: Option<&Arc<Activity>> = None;
        for activity in open.values() {
            if !activity.is_idle() {
                continue;
            }
            if activity.close_asked.load(Ordering::Acquire) {
                return true;
            }
            if longest.is_none_or(|l| activity.idle_since() < l.idle_since()) {
                longest = Some(activity);
            }
        }
        match longest {
            Some(activity) => {
                activity.ask_to_close();
                true
            }
            None => false,
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<u64, Arc<Activity>>> {
        self.open.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// Held by a connection's socket: the connection is open until it drops
/// (after an upgrade, with the tunnel that owns the socket).
pub(crate) struct Slot {
    connections: Arc<Connections>,
    id: u64,
}

impl Drop for Slot {
    fn drop(&mut self) {
        self.connections.lock().remove(&self.id);
        self.connections.changed.notify_one();
    }
}

/// Held by a connection's task while it runs.
pub(crate) struct Serving(Arc<Connections>);

impl Drop for Serving {
    fn drop(&mut self) {
        self.0.serving.fetch_sub(1, Ordering::AcqRel);
        self.0.changed.notify_one();
    }
}

/// What a connection is doing, shared by its task, its requests and the
/// serving thread's accept loop.
pub(crate) struct Activity {
    started: Instant,
    /// Requests in progress.
    in_flight: AtomicUsize,
    /// Whether a request ever started (the idle timeout applies from then
    /// on, the header-read timeout before).
    served: AtomicBool,
    /// Milliseconds from `started` to the end of the last response.
    idle_since_ms: AtomicU64,
    /// No longer served by its task (closed, or handed to a tunnel).
    detached: AtomicBool,
    close_asked: AtomicBool,
    /// Told when the last request in progress ends.
    became_idle: Notify,
    /// Told when the first request starts (the idle timeout applies from
    /// then on, and may be shorter than the header-read timeout).
    first_request: Notify,
    /// Told when the accept loop asks the connection to close.
    close: Notify,
}

/// Why a connection is to close.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Expiry {
    /// No request's head within the header-read or idle timeout.
    Timeout,
    /// Asked to make room at the cap.
    Shed,
    /// Asked to close (a timeout, room, shutdown) and not closed in time.
    Lingered,
}

impl Activity {
    fn new() -> Self {
        Self {
            started: Instant::now(),
            in_flight: AtomicUsize::new(0),
            served: AtomicBool::new(false),
            idle_since_ms: AtomicU64::new(0),
            detached: AtomicBool::new(false),
            close_asked: AtomicBool::new(false),
            became_idle: Notify::new(),
            first_request: Notify::new(),
            close: Notify::new(),
        }
    }

    /// A request starts; it is in progress until the guard drops.
    pub(crate) fn begin(self: &Arc<Self>) -> InFlight {
        self.in_flight.fetch_add(1, Ordering::AcqRel);
        if !self.served.load(Ordering::Relaxed) && !self.served.swap(true, Ordering::AcqRel) {
            self.first_request.notify_one();
        }
        InFlight(self.clone())
    }

    /// The connection's task is done with it.
    pub(crate) fn detach(&self) {
        self.detached.store(true, Ordering::Release);
    }

    fn is_idle(&self) -> bool {
        !self.detached.load(Ordering::Acquire) && self.in_flight.load(Ordering::Acquire) == 0
    }

    fn idle_since(&self) -> Instant {
        self.started + Duration::from_millis(self.idle_since_ms.load(Ordering::Acquire))
    }

    fn ask_to_close(&self) {
        self.close_asked.store(true, Ordering::Release);
        self.close.notify_one();
    }

    /// Resolves when the accept loop asks the connection to close.
    pub(crate) async fn close_asked(&self) {
        loop {
            let close = self.close.notified();
            if self.close_asked.load(Ordering::Acquire) {
                return;
            }
            close.await;
        }
    }

    /// Resolves when the connection should close: idle past its timeout,
    /// asked to make room, or (with `closing`, the instant it was asked to
    /// close) idle for [`CLOSE_GRACE`] since then and since its last
    /// response. Never while a request is in progress.
    pub(crate) async fn expired(
        &self,
        limits: &ConnectionLimits,
        closing: Option<Instant>,
    ) -> Expiry {
        loop {
            let became_idle = self.became_idle.notified();
            let first_request = self.first_request.notified();
            let close = self.close.notified();
            tokio::pin!(became_idle, first_request, close);
            if closing.is_none() && self.close_asked.load(Ordering::Acquire) {
                return Expiry::Shed;
            }
            if self.in_flight.load(Ordering::Acquire) > 0 {
                tokio::select! {
                    () = &mut became_idle => {}
                    () = &mut close => {}
                }
                continue;
            }
            let idle_since = self.idle_since();
            let served = self.served.load(Ordering::Acquire);
            let (deadline, expiry) = match closing {
                Some(asked) => (asked.max(idle_since) + CLOSE_GRACE, Expiry::Lingered),
                None if served => (idle_since + limits.idle_timeout, Expiry::Timeout),
                None => (idle_since + limits.header_read_timeout, Expiry::Timeout),
            };
            if Instant::now() >= deadline {
                return expiry;
            }
            // A response that ends while this sleeps only moves the deadline
            // later: it is looked at again when the sleep ends.
            tokio::select! {
                () = tokio::time::sleep_until(deadline.into()) => {}
                () = &mut close, if closing.is_none() => {}
                () = &mut first_request, if !served => {}
            }
        }
    }
}

/// A request in progress; see [`Activity::begin`].
pub(crate) struct InFlight(Arc<Activity>);

impl Drop for InFlight {
    fn drop(&mut self) {
        let activity = &self.0;
        if activity.in_flight.fetch_sub(1, Ordering::AcqRel) == 1 {
            let ms = u64::try_from(activity.started.elapsed().as_millis()).unwrap_or(u64::MAX);
            activity.idle_since_ms.store(ms, Ordering::Release);
            activity.became_idle.notify_one();
        }
    }
}

pin_project_lite::pin_project! {
    /// A response body that keeps its request in progress until it is
    /// written or dropped.
    pub(crate) struct TrackedBody<B> {
        #[pin]
        inner: B,
        in_flight: InFlight,
    }
}

impl<B> TrackedBody<B> {
    pub(crate) fn new(inner: B, in_flight: InFlight) -> Self {
        Self { inner, in_flight }
    }
}

impl<B: Body<Data = Bytes>> Body for TrackedBody<B> {
    type Data = Bytes;
    type Error = B::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        self.project().inner.poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

/// A socket that holds its connection's [`Slot`].
pub(crate) struct Counted<I> {
    io: I,
    _slot: Slot,
}

impl<I> Counted<I> {
    pub(crate) fn new(io: I, slot: Slot) -> Self {
        Self { io, _slot: slot }
    }
}

impl<I: AsyncRead + Unpin> AsyncRead for Counted<I> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.io).poll_read(cx, buf)
    }
}

impl<I: AsyncWrite + Unpin> AsyncWrite for Counted<I> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.io).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.io).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.io).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.io).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits(max: usize) -> ConnectionLimits {
        ConnectionLimits {
            max_connections: max,
            ..ConnectionLimits::default()
        }
    }

    #[test]
    fn the_cap_is_shared_among_threads_rounded_up() {
        assert_eq!(limits(4096).per_thread(2).max_connections, 2048);
        assert_eq!(limits(5).per_thread(2).max_connections, 3);
        assert_eq!(limits(1).per_thread(8).max_connections, 1);
        assert_eq!(limits(7).per_thread(0).max_connections, 7);
    }

    #[test]
    fn room_is_made_by_the_longest_idle_connection_never_a_busy_one() {
        let connections = Connections::new(limits(3));
        let (busy, _slot_a, _task_a) = connections.admit();
        let (older, _slot_b, _task_b) = connections.admit();
        let (newer, _slot_c, _task_c) = connections.admit();
        let _request = busy.begin();
        newer.idle_since_ms.store(10, Ordering::Release);
        assert!(connections.is_full());

        assert!(connections.make_room());
        assert!(older.close_asked.load(Ordering::Acquire));
        assert!(!newer.close_asked.load(Ordering::Acquire));
        // While that one closes, no other is asked.
        assert!(connections.make_room());
        assert!(!newer.close_asked.load(Ordering::Acquire));
        assert!(!busy.close_asked.load(Ordering::Acquire));
    }

    #[test]
    fn a_closed_slot_leaves_the_count() {
        let connections = Connections::new(limits(1));
        let (_activity, slot, task) = connections.admit();
        assert!(connections.is_full());
        assert!(!connections.is_drained());
        drop(slot);
        assert!(!connections.is_full());
        drop(task);
        assert!(connections.is_drained());
    }

    #[test]
    fn a_detached_or_busy_connection_is_not_idle() {
        let connections = Connections::new(limits(2));
        let (activity, _slot, _task) = connections.admit();
        assert!(activity.is_idle());
        let request = activity.begin();
        assert!(!activity.is_idle());
        drop(request);
        assert!(activity.is_idle());
        activity.detach();
        assert!(!activity.is_idle());
        assert!(!connections.make_room());
    }
}

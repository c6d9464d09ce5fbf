//! Serving a Tower service over HTTP/1.1 and HTTP/2, plain or TLS, with
//! upgrades, under a connection policy (timed from accept and between
//! requests, capped, shed idle-first; see [`ConnectionLimits`]), and a
//! graceful shutdown that lets in-flight requests finish.

mod connections;

use std::convert::Infallible;
use std::error::Error as StdError;
use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::{Request, Response};
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio_rustls::TlsAcceptor;
use tower::{Service, ServiceExt};

pub(crate) use self::connections::ConnectionLimits;
use self::connections::{Activity, Connections, Counted, Expiry, Serving, Slot, TrackedBody};
use crate::answer::Body;

/// How long the accept loop waits, at the cap or out of file descriptors,
/// before it looks again for a connection to close.
const RECHECK: Duration = Duration::from_millis(50);

/// How long a serving thread holding more than its share of the
/// connections waits before it accepts one, so that a thread with fewer
/// takes it (see [`Balance`]).
const BALANCE_PAUSE: Duration = Duration::from_millis(1);

/// What the server knows about the connection a request came in on; in
/// every request's extensions.
#[derive(Debug, Clone, Copy)]
pub(crate) struct ClientInfo {
    /// The peer's address.
    pub(crate) peer: SocketAddr,
    /// Whether the connection is TLS.
    pub(crate) tls: bool,
}

/// A bound socket, plain or TLS.
pub(crate) struct Listener {
    tcp: TcpListener,
    tls: Option<TlsAcceptor>,
    balance: Balance,
}

/// The open connections of one listener and of all the handles sharing
/// its socket ([`Listener::share`]). Every serving thread is woken for a
/// new connection and the first to call `accept` gets it, so one thread
/// could take a whole burst of connections and serve them alone while the
/// others idle; a thread holding more than its share lets the others
/// accept first (as nginx's workers share connections).
#[derive(Debug, Clone, Default)]
struct Balance {
    /// This handle's open connections.
    mine: Arc<AtomicUsize>,
    /// All handles' open connections, and how many handles there are.
    group: Arc<(AtomicUsize, AtomicUsize)>,
}

impl Balance {
    fn new() -> Self {
        let balance = Self::default();
        balance.group.1.store(1, Ordering::Relaxed);
        balance
    }

    fn share(&self) -> Self {
        self.group.1.fetch_add(1, Ordering::Relaxed);
        Self {
            mine: Arc::new(AtomicUsize::new(0)),
            group: self.group.clone(),
        }
    }

    /// Whether this handle holds more than its share (plus one).
    fn over_share(&self) -> bool {
        let handles = self.group.1.load(Ordering::Relaxed);
        handles > 1
            && self.mine.load(Ordering::Relaxed) * handles
                > self.group.0.load(Ordering::Relaxed) + handles
    }

    /// Counts an accepted connection until the returned guard is dropped.
    fn accepted(&self) -> Held {
        self.mine.fetch_add(1, Ordering::Relaxed);
        self.group.0.fetch_add(1, Ordering::Relaxed);
        Held(self.clone())
    }
}

/// An accepted connection, counted in its [`Balance`] while it is open.
struct Held(Balance);

impl Drop for Held {
    fn drop(&mut self) {
        self.0.mine.fetch_sub(1, Ordering::Relaxed);
        self.0.group.0.fetch_sub(1, Ordering::Relaxed);
    }
}

impl std::fmt::Debug for Listener {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Listener")
            .field("addr", &self.tcp.local_addr().ok())
            .field("tls", &self.tls.is_some())
            .finish()
    }
}

impl Listener {
    /// Binds `addr`; with a rustls configuration, connections are TLS.
    pub(crate) async fn bind(
        addr: SocketAddr,
        tls: Option<Arc<rustls::ServerConfig>>,
    ) -> io::Result<Self> {
        Ok(Self {
            tcp: TcpListener::bind(addr).await?,
            tls: tls.map(TlsAcceptor::from),
            balance: Balance::new(),
        })
    }

    /// The bound address (with the real port when `:0` was asked for).
    pub(crate) fn local_addr(&self) -> io::Result<SocketAddr> {
        self.tcp.local_addr()
    }

    /// `http` or `https`.
    pub(crate) fn scheme(&self) -> &'static str {
        if self.tls.is_some() { "https" } else { "http" }
    }

    /// Another handle on the same bound socket, to accept connections from
    /// another thread's runtime ([`SharedListener::into_listener`]).
    pub(crate) fn share(&self) -> io::Result<SharedListener> {
        #[cfg(unix)]
        let socket = {
            use std::os::fd::AsFd;
            std::net::TcpListener::from(self.tcp.as_fd().try_clone_to_owned()?)
        };
        #[cfg(windows)]
        let socket = {
            use std::os::windows::io::AsSocket;
            std::net::TcpListener::from(self.tcp.as_socket().try_clone_to_owned()?)
        };
        Ok(SharedListener {
            socket,
            tls: self.tls.clone(),
            balance: self.balance.share(),
        })
    }
}

/// A bound socket handed to another thread; see [`Listener::share`].
pub(crate) struct SharedListener {
    socket: std::net::TcpListener,
    tls: Option<TlsAcceptor>,
    balance: Balance,
}

impl std::fmt::Debug for SharedListener {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SharedListener")
            .field("addr", &self.socket.local_addr().ok())
            .field("tls", &self.tls.is_some())
            .finish()
    }
}

impl SharedListener {
    /// The listener, registered with the runtime this is called on.
    pub(crate) fn into_listener(self) -> io::Result<Listener> {
        self.socket.set_nonblocking(true)?;
        Ok(Listener {
            tcp: TcpListener::from_std(self.socket)?,
            tls: self.tls,
            balance: self.balance,
        })
    }
}

/// Serves `service` on `listener` until `shutdown` completes, then stops
/// accepting and waits up to `grace` for the open connections' requests.
/// `limits` are this thread's: see [`ConnectionLimits::per_thread`].
pub(crate) async fn serve<S, B>(
    listener: Listener,
    service: S,
    shutdown: impl Future<Output = ()>,
    grace: Duration,
    limits: ConnectionLimits,
) where
    S: Service<Request<Body>, Response = Response<B>, Error = Infallible> + Clone + Send + 'static,
    S::Future: Send + 'static,
    B: http_body::Body<Data = Bytes> + Send + 'static,
    B::Error: Into<Box<dyn StdError + Send + Sync>>,
{
    let connections = Connections::new(limits);
    let (stop, stopped) = watch::channel(false);
    let mut builder = auto::Builder::new(TokioExecutor::new());
    // Request heads are timed by the connection policy, from accept and
    // from the end of the previous response, for both protocols.
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(None);
    tokio::pin!(shutdown);
    'accepting: loop {
        if listener.balance.over_share() {
            tokio::select! {
                () = tokio::time::sleep(BALANCE_PAUSE) => {}
                () = &mut shutdown => break,
            }
        }
        let (stream, peer) = tokio::select! {
            accepted = listener.tcp.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(error) => {
                    if out_of_descriptors(&error) {
                        tracing::warn!(
                            target: "meingpt_gateway::server",
                            %error,
                            "out of file descriptors: closing the longest idle connection"
                        );
                        connections.make_room();
                    } else {
                        tracing::warn!(target: "meingpt_gateway::server", %error, "accept failed");
                    }
                    tokio::select! {
                        () = connections.changed() => {}
                        () = tokio::time::sleep(RECHECK) => {}
                    }
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        // At the cap: close the connection idle the longest for this one,
        // or, when every connection has a request in progress, let this one
        // wait (unread) until one closes.
        while connections.is_full() {
            connections.make_room();
            tokio::select! {
                () = connections.changed() => {}
                () = tokio::time::sleep(RECHECK) => {}
                () = &mut shutdown => break 'accepting,
            }
        }
        let _ = stream.set_nodelay(true);
        // Counted from now, so that the cap holds before the task runs.
        let admitted = connections.admit();
        let connection = Connection {
            builder: builder.clone(),
            service: service.clone(),
            connections: connections.clone(),
            stopped: stopped.clone(),
            peer,
        };
        let held = listener.balance.accepted();
        let tls = listener.tls.clone();
        tokio::spawn(async move {
            connection.run(stream, admitted, tls).await;
            drop(held);
        });
    }
    drop(listener);
    let _ = stop.send(true);
    let drained = async {
        while !connections.is_drained() {
            connections.changed().await;
        }
    };
    tokio::select! {
        () = drained => {}
        () = tokio::time::sleep(grace) => {
            tracing::warn!(
                target: "meingpt_gateway::server",
                "connections still open after the shutdown grace period; closing them"
            );
        }
    }
}

/// EMFILE or ENFILE: the process or the system is out of file descriptors.
fn out_of_descriptors(error: &io::Error) -> bool {
    // The same numbers on Linux, the BSDs and macOS.
    cfg!(unix) && matches!(error.raw_os_error(), Some(23 | 24))
}

/// One accepted connection, served on its own task.
struct Connection<S> {
    builder: auto::Builder<TokioExecutor>,
    service: S,
    connections: Arc<Connections>,
    stopped: watch::Receiver<bool>,
    peer: SocketAddr,
}

impl<S> Connection<S> {
    async fn run<B>(
        self,
        stream: TcpStream,
        (activity, slot, _serving): (Arc<Activity>, Slot, Serving),
        tls: Option<TlsAcceptor>,
    ) where
        S: Service<Request<Body>, Response = Response<B>, Error = Infallible>
            + Clone
            + Send
            + 'static,
        S::Future: Send + 'static,
        B: http_body::Body<Data = Bytes> + Send + 'static,
        B::Error: Into<Box<dyn StdError + Send + Sync>>,
    {
        let stream = Counted::new(stream, slot);
        let peer = self.peer;
        match tls {
            None => {
                let info = ClientInfo { peer, tls: false };
                self.serve(TokioIo::new(stream), info, &activity).await;
            }
            Some(acceptor) => {
                let timeout = self.connections.limits().tls_handshake_timeout;
                let handshake = tokio::time::timeout(timeout, acceptor.accept(stream));
                tokio::select! {
                    handshake = handshake => match handshake {
                        Ok(Ok(stream)) => {
                            let info = ClientInfo { peer, tls: true };
                            self.serve(TokioIo::new(stream), info, &activity).await;
                        }
                        Ok(Err(error)) => tracing::debug!(
                            target: "meingpt_gateway::server", %error, "TLS handshake failed"
                        ),
                        Err(_) => tracing::debug!(
                            target: "meingpt_gateway::server", "TLS handshake timed out"
                        ),
                    },
                    () = activity.close_asked() => tracing::debug!(
                        target: "meingpt_gateway::server", "closed during its TLS handshake to make room"
                    ),
                }
            }
        }
        activity.detach();
    }

    /// Serves HTTP on `io` until the connection ends or the policy closes it.
    async fn serve<I, B>(mut self, io: I, info: ClientInfo, activity: &Arc<Activity>)
    where
        I: hyper::rt::Read + hyper::rt::Write + Unpin + Send + 'static,
        S: Service<Request<Body>, Response = Response<B>, Error = Infallible>
            + Clone
            + Send
            + 'static,
        S::Future: Send + 'static,
        B: http_body::Body<Data = Bytes> + Send + 'static,
        B::Error: Into<Box<dyn StdError + Send + Sync>>,
    {
        let service = self.service;
        let requests = activity.clone();
        let hyper_service = hyper::service::service_fn(move |request: Request<Incoming>| {
            let in_flight = requests.begin();
            let mut request = request.map(Body::new);
            request.extensions_mut().insert(info);
            let answer = service.clone().oneshot(request);
            async move {
                let response = answer.await?;
                Ok::<_, Infallible>(response.map(|body| TrackedBody::new(body, in_flight)))
            }
        });
        let connection = self
            .builder
            .serve_connection_with_upgrades(io, hyper_service);
        tokio::pin!(connection);
        let limits = *self.connections.limits();
        let mut closing: Option<Instant> = None;
        loop {
            tokio::select! {
                result = connection.as_mut() => {
                    if let Err(error) = result {
                        tracing::debug!(target: "meingpt_gateway::server", %error, "connection ended with an error");
                    }
                    return;
                }
                expiry = activity.expired(&limits, closing) => {
                    if expiry == Expiry::Lingered {
                        tracing::debug!(target: "meingpt_gateway::server", "connection did not close in time; dropped");
                        return;
                    }
                    tracing::debug!(target: "meingpt_gateway::server", ?expiry, "closing an idle connection");
                    connection.as_mut().graceful_shutdown();
                    closing = Some(Instant::now());
                }
                changed = self.stopped.wait_for(|stop| *stop), if closing.is_none() => {
                    let _ = changed;
                    connection.as_mut().graceful_shutdown();
                    closing = Some(Instant::now());
                }
            }
        }
    }
}

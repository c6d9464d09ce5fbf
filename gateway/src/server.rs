//! Serving a Tower service over HTTP/1.1 and HTTP/2, plain or TLS, with
//! upgrades, and a graceful shutdown that lets in-flight requests finish.

use std::convert::Infallible;
use std::error::Error as StdError;
use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::{Request, Response};
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::{GracefulShutdown, Watcher};
use tokio::net::TcpListener;
use tokio_rustls::TlsAcceptor;
use tower::{Service, ServiceExt};

use crate::proxy::{Body, ClientInfo};

/// How long a client has to complete the TLS handshake.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// How long a client has to send a request's headers.
const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(30);

/// A bound socket, plain or TLS.
pub struct Listener {
    tcp: TcpListener,
    tls: Option<TlsAcceptor>,
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
    pub async fn bind(
        addr: SocketAddr,
        tls: Option<Arc<rustls::ServerConfig>>,
    ) -> io::Result<Self> {
        Ok(Self {
            tcp: TcpListener::bind(addr).await?,
            tls: tls.map(TlsAcceptor::from),
        })
    }

    /// The bound address (with the real port when `:0` was asked for).
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.tcp.local_addr()
    }

    /// `http` or `https`.
    pub fn scheme(&self) -> &'static str {
        if self.tls.is_some() { "https" } else { "http" }
    }

    /// Another handle on the same bound socket, to accept connections from
    /// another thread's runtime ([`SharedListener::into_listener`]).
    pub fn share(&self) -> io::Result<SharedListener> {
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
        })
    }
}

/// A bound socket handed to another thread; see [`Listener::share`].
pub struct SharedListener {
    socket: std::net::TcpListener,
    tls: Option<TlsAcceptor>,
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
    pub fn into_listener(self) -> io::Result<Listener> {
        self.socket.set_nonblocking(true)?;
        Ok(Listener {
            tcp: TcpListener::from_std(self.socket)?,
            tls: self.tls,
        })
    }
}

/// Serves `service` on `listener` until `shutdown` completes, then stops
/// accepting and waits up to `grace` for the open connections' requests.
pub async fn serve<S, B>(
    listener: Listener,
    service: S,
    shutdown: impl Future<Output = ()>,
    grace: Duration,
) where
    S: Service<Request<Body>, Response = Response<B>, Error = Infallible> + Clone + Send + 'static,
    S::Future: Send + 'static,
    B: http_body::Body<Data = Bytes> + Send + 'static,
    B::Error: Into<Box<dyn StdError + Send + Sync>>,
{
    let graceful = GracefulShutdown::new();
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(HEADER_READ_TIMEOUT);
    tokio::pin!(shutdown);
    loop {
        tokio::select! {
            accepted = listener.tcp.accept() => {
                let (stream, peer) = match accepted {
                    Ok(accepted) => accepted,
                    Err(error) => {
                        // Out of file descriptors and the like: back off briefly.
                        tracing::warn!(target: "meingpt_gateway::server", %error, "accept failed");
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        continue;
                    }
                };
                let _ = stream.set_nodelay(true);
                let connection = Connection {
                    builder: builder.clone(),
                    watcher: graceful.watcher(),
                    service: service.clone(),
                };
                match listener.tls.clone() {
                    None => {
                        let info = ClientInfo { peer, tls: false };
                        tokio::spawn(connection.serve(TokioIo::new(stream), info));
                    }
                    Some(acceptor) => {
                        tokio::spawn(async move {
                            match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(stream)).await {
                                Ok(Ok(stream)) => {
                                    let info = ClientInfo { peer, tls: true };
                                    connection.serve(TokioIo::new(stream), info).await;
                                }
                                Ok(Err(error)) => tracing::debug!(
                                    target: "meingpt_gateway::server", %error, "TLS handshake failed"
                                ),
                                Err(_) => tracing::debug!(
                                    target: "meingpt_gateway::server", "TLS handshake timed out"
                                ),
                            }
                        });
                    }
                }
            }
            () = &mut shutdown => break,
        }
    }
    drop(listener);
    tokio::select! {
        () = graceful.shutdown() => {}
        () = tokio::time::sleep(grace) => {
            tracing::warn!(
                target: "meingpt_gateway::server",
                "connections still open after the shutdown grace period; closing them"
            );
        }
    }
}

struct Connection<S> {
    builder: auto::Builder<TokioExecutor>,
    watcher: Watcher,
    service: S,
}

impl<S> Connection<S> {
    async fn serve<I, B>(self, io: I, info: ClientInfo)
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
        let hyper_service = hyper::service::service_fn(move |request: Request<Incoming>| {
            let mut request = request.map(Body::new);
            request.extensions_mut().insert(info);
            service.clone().oneshot(request)
        });
        let connection = self
            .builder
            .serve_connection_with_upgrades(io, hyper_service)
            .into_owned();
        if let Err(error) = self.watcher.watch(connection).await {
            tracing::debug!(target: "meingpt_gateway::server", error = %error, "connection ended with an error");
        }
    }
}

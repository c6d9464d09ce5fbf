//! The upstream client: plain HTTP/1.1 connections made with hyper's
//! `client::conn`, kept idle per serving thread and driven by the request
//! that uses them.
//!
//! Each serving thread builds its own [`UpstreamClient`] (see
//! `app::serve_on_threads`), so a request, its upstream connection and its
//! response body stay on the thread that accepted the client connection. A
//! connection in use belongs to one request: the request's own future
//! writes the request and reads the response head, and the response body
//! reads the rest as the server sends it to the client. No task runs per
//! connection or per request, and nothing is handed between tasks. When the
//! response body has been read to its end and the connection has finished
//! the exchange (an upstream may answer before it has read the whole
//! request body), the connection goes back to its thread's idle list (newest first; closed after [`IDLE_TIMEOUT`] unused,
//! at most [`MAX_IDLE`] per upstream). A request that finds its reused
//! connection closed by the upstream before it was written is retried on a
//! new connection. After a `101 Switching Protocols` the connection is
//! driven to the hand-over by a task of its own and never reused.

use std::collections::VecDeque;
use std::error::Error as StdError;
use std::fmt;
use std::future::{Future, poll_fn};
use std::pin::Pin;
use std::sync::{Arc, Mutex, PoisonError, Weak};
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::uri::{Authority, PathAndQuery};
use http::{HeaderValue, Request, Response, StatusCode, Uri, header};
use http_body::{Body as _, Frame, SizeHint};
use hyper::body::Incoming;
use hyper::client::conn::http1::{self, SendRequest};
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;

use crate::answer::Body;

/// How long a connection may stay idle before it is closed.
pub(crate) const IDLE_TIMEOUT: Duration = Duration::from_secs(60);

/// Idle connections kept per upstream and serving thread at most.
pub(crate) const MAX_IDLE: usize = 1024;

/// A connection with upgrades, driven to its end by polling (hyper does not
/// name the type).
type Connection = dyn Future<Output = hyper::Result<()>> + Send;

/// One upstream HTTP/1.1 connection: the handle that sends requests on it,
/// and the connection itself, polled by whoever uses it.
struct Conn {
    sender: SendRequest<Body>,
    /// `None` once the connection has ended.
    connection: Option<Pin<Box<Connection>>>,
}

impl Conn {
    /// Drives the connection; `true` while it is open.
    fn drive(&mut self, cx: &mut Context<'_>) -> bool {
        let Some(connection) = self.connection.as_mut() else {
            return false;
        };
        match connection.as_mut().poll(cx) {
            Poll::Pending => true,
            Poll::Ready(result) => {
                if let Err(error) = result {
                    tracing::debug!(target: "meingpt_gateway::proxy", %error, "upstream connection ended");
                }
                self.connection = None;
                false
            }
        }
    }
}

struct Idle {
    conn: Conn,
    since: Instant,
}

/// The idle connections of one serving thread, per upstream (a few: a
/// list is quicker to search than a map is to hash; the authorities come
/// from the configuration, spelled the same each time, so they are
/// compared as written).
#[derive(Default)]
struct Pool {
    idle: Mutex<Vec<(Authority, VecDeque<Idle>)>>,
}

impl Pool {
    fn take(&self, authority: &Authority) -> Option<Conn> {
        let mut idle = self.idle.lock().unwrap_or_else(PoisonError::into_inner);
        let (_, list) = idle
            .iter_mut()
            .find(|(a, _)| a.as_str() == authority.as_str())?;
        let now = Instant::now();
        while let Some(entry) = list.pop_back() {
            if now.duration_since(entry.since) < IDLE_TIMEOUT && !entry.conn.sender.is_closed() {
                return Some(entry.conn);
            }
        }
        None
    }

    fn put(&self, authority: Authority, conn: Conn) {
        let mut idle = self.idle.lock().unwrap_or_else(PoisonError::into_inner);
        let index = match idle
            .iter()
            .position(|(a, _)| a.as_str() == authority.as_str())
        {
            Some(index) => index,
            None => {
                idle.push((authority, VecDeque::new()));
                idle.len() - 1
            }
        };
        let list = &mut idle[index].1;
        if list.len() >= MAX_IDLE {
            list.pop_front();
        }
        list.push_back(Idle {
            conn,
            since: Instant::now(),
        });
    }

    /// Closes the connections idle longer than [`IDLE_TIMEOUT`].
    fn evict(&self) {
        let mut idle = self.idle.lock().unwrap_or_else(PoisonError::into_inner);
        let now = Instant::now();
        for (_, list) in idle.iter_mut() {
            while list
                .front()
                .is_some_and(|entry| now.duration_since(entry.since) >= IDLE_TIMEOUT)
            {
                list.pop_front();
            }
        }
        idle.retain(|(_, list)| !list.is_empty());
    }
}

/// A serving thread's upstream client. Cheap to clone (clones share the
/// idle connections).
#[derive(Clone)]
pub(crate) struct UpstreamClient {
    pool: Arc<Pool>,
    connect_timeout: Duration,
}

impl fmt::Debug for UpstreamClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("UpstreamClient")
            .field("connect_timeout", &self.connect_timeout)
            .finish_non_exhaustive()
    }
}

/// Why an upstream request failed.
#[derive(Debug)]
pub(crate) struct UpstreamError {
    connect: bool,
    source: Box<dyn StdError + Send + Sync>,
}

impl UpstreamError {
    /// Whether no connection to the upstream could be made.
    pub(crate) fn is_connect(&self) -> bool {
        self.connect
    }

    fn connect(source: impl Into<Box<dyn StdError + Send + Sync>>) -> Self {
        Self {
            connect: true,
            source: source.into(),
        }
    }
}

impl fmt::Display for UpstreamError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(if self.connect {
            "cannot connect to the upstream"
        } else {
            "upstream request failed"
        })
    }
}

impl StdError for UpstreamError {
    fn source(&self) -> Option<&(dyn StdError + 'static)> {
        Some(&*self.source)
    }
}

impl UpstreamClient {
    /// A client whose connection attempts give up after `connect_timeout`.
    /// Inside a Tokio runtime it also closes idle connections on time.
    pub(crate) fn new(connect_timeout: Duration) -> Self {
        let pool = Arc::new(Pool::default());
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            runtime.spawn(evict_idle(Arc::downgrade(&pool)));
        }
        Self {
            pool,
            connect_timeout,
        }
    }

    /// Sends `request` (its URI absolute, `http://authority/…`) and returns
    /// the response once its head has arrived. The request is sent in
    /// origin form, with `Host` set to the URI's authority unless present.
    pub(crate) async fn request(
        &self,
        mut request: Request<Body>,
    ) -> Result<Response<UpstreamBody>, UpstreamError> {
        let authority = request
            .uri()
            .authority()
            .cloned()
            .ok_or_else(|| UpstreamError::connect("the upstream URI has no authority"))?;
        if !request.headers().contains_key(header::HOST)
            && let Ok(host) = HeaderValue::from_str(authority.as_str())
        {
            request.headers_mut().insert(header::HOST, host);
        }
        let path = request
            .uri()
            .path_and_query()
            .cloned()
            .unwrap_or_else(|| PathAndQuery::from_static("/"));
        *request.uri_mut() = Uri::from(path);

        loop {
            let (conn, reused) = match self.pool.take(&authority) {
                Some(conn) => (conn, true),
                None => (self.connect(&authority).await?, false),
            };
            match send(conn, request).await {
                Ok((response, conn)) => {
                    return Ok(self.response(response, conn, authority));
                }
                Err(Failed::Unsent(unsent, error)) if reused => {
                    tracing::debug!(target: "meingpt_gateway::proxy", %error, "idle upstream connection was closed; retrying on a new one");
                    request = *unsent;
                }
                Err(Failed::Unsent(_, source)) => {
                    return Err(UpstreamError {
                        connect: false,
                        source,
                    });
                }
                Err(Failed::Sent(error)) => {
                    return Err(UpstreamError {
                        connect: false,
                        source: Box::new(error),
                    });
                }
            }
        }
    }

    async fn connect(&self, authority: &Authority) -> Result<Conn, UpstreamError> {
        let address = match authority.port_u16() {
            Some(_) => authority.as_str().to_owned(),
            None => format!("{}:80", authority.host()),
        };
        let stream = tokio::time::timeout(self.connect_timeout, TcpStream::connect(address))
            .await
            .map_err(|_| UpstreamError::connect("connect timed out"))?
            .map_err(UpstreamError::connect)?;
        let _ = stream.set_nodelay(true);
        let (sender, connection) = http1::Builder::new()
            .handshake(TokioIo::new(stream))
            .await
            .map_err(UpstreamError::connect)?;
        Ok(Conn {
            sender,
            connection: Some(Box::pin(connection.with_upgrades())),
        })
    }

    fn response(
        &self,
        response: Response<Incoming>,
        mut conn: Conn,
        authority: Authority,
    ) -> Response<UpstreamBody> {
        if response.status() == StatusCode::SWITCHING_PROTOCOLS {
            // The connection becomes the tunnel once driven to the hand-over.
            if let Some(connection) = conn.connection.take() {
                tokio::spawn(async move {
                    if let Err(error) = connection.await {
                        tracing::debug!(target: "meingpt_gateway::proxy", %error, "upstream upgrade failed");
                    }
                });
            }
            return response.map(|body| UpstreamBody {
                body,
                ended: false,
                unflushed: false,
                error: None,
                conn: None,
                back_to: None,
            });
        }
        let pool = Arc::downgrade(&self.pool);
        response.map(|body| UpstreamBody {
            body,
            ended: false,
            unflushed: false,
            error: None,
            conn: Some(conn),
            back_to: Some((pool, authority)),
        })
    }
}

enum Failed {
    /// The connection closed before the request was written.
    Unsent(Box<Request<Body>>, Box<dyn StdError + Send + Sync>),
    Sent(hyper::Error),
}

/// Writes `request` on `conn` and reads the response head, driving the
/// connection from this future.
async fn send(
    mut conn: Conn,
    request: Request<Body>,
) -> Result<(Response<Incoming>, Conn), Failed> {
    // Wait until the connection takes a request: it may still be finishing
    // the previous exchange, or find that the upstream closed it.
    let ready = poll_fn(|cx| {
        let open = conn.drive(cx);
        match conn.sender.poll_ready(cx) {
            Poll::Ready(Ok(())) => Poll::Ready(Ok(())),
            Poll::Ready(Err(error)) => Poll::Ready(Err(error.into())),
            Poll::Pending if open => Poll::Pending,
            Poll::Pending => Poll::Ready(Err("the upstream closed the connection".into())),
        }
    })
    .await;
    if let Err(error) = ready {
        return Err(Failed::Unsent(Box::new(request), error));
    }
    let mut answer = std::pin::pin!(conn.sender.try_send_request(request));
    let result = poll_fn(|cx| {
        conn.drive(cx);
        answer.as_mut().poll(cx)
    })
    .await;
    match result {
        Ok(response) => Ok((response, conn)),
        Err(mut error) => match error.take_message() {
            Some(request) => Err(Failed::Unsent(Box::new(request), error.into_error().into())),
            None => Err(Failed::Sent(error.into_error())),
        },
    }
}

/// Closes the pool's expired idle connections every few seconds, until the
/// client is gone.
async fn evict_idle(pool: Weak<Pool>) {
    let mut interval = tokio::time::interval(IDLE_TIMEOUT / 4);
    interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        interval.tick().await;
        match pool.upgrade() {
            Some(pool) => pool.evict(),
            None => return,
        }
    }
}

/// An upstream response body. Reading it drives its connection, which goes
/// back to its thread's idle connections when the body has been read to
/// its end.
pub(crate) struct UpstreamBody {
    body: Incoming,
    /// Read to its end.
    ended: bool,
    /// Data was returned since the last `Pending`: the server may not have
    /// written it yet.
    unflushed: bool,
    /// An error held back until the data before it is written.
    error: Option<hyper::Error>,
    conn: Option<Conn>,
    back_to: Option<(Weak<Pool>, Authority)>,
}

impl fmt::Debug for UpstreamBody {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("UpstreamBody").finish_non_exhaustive()
    }
}

impl http_body::Body for UpstreamBody {
    type Data = Bytes;
    type Error = hyper::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, hyper::Error>>> {
        let this = self.get_mut();
        if let Some(error) = this.error.take() {
            return Poll::Ready(Some(Err(error)));
        }
        if let Some(conn) = this.conn.as_mut() {
            conn.drive(cx);
        }
        let frame = Pin::new(&mut this.body).poll_frame(cx);
        match &frame {
            Poll::Ready(None) => this.ended = true,
            Poll::Ready(Some(Ok(_))) => this.unflushed = true,
            Poll::Pending => this.unflushed = false,
            Poll::Ready(Some(Err(_))) if this.unflushed => {
                // The upstream broke off: let the server write what came
                // before (the client sees the response cut, not missing).
                if let Poll::Ready(Some(Err(error))) = frame {
                    this.error = Some(error);
                }
                this.unflushed = false;
                cx.waker().wake_by_ref();
                return Poll::Pending;
            }
            Poll::Ready(Some(Err(_))) => {}
        }
        frame
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.body.size_hint()
    }
}

impl Drop for UpstreamBody {
    fn drop(&mut self) {
        // A body dropped before its end leaves the connection mid-response:
        // it is closed, not reused.
        if !self.ended && !self.body.is_end_stream() {
            return;
        }
        let (Some(mut conn), Some((pool, authority))) = (self.conn.take(), self.back_to.take())
        else {
            return;
        };
        // Let the connection finish the exchange; one still busy with it
        // (an upstream that answered before reading the whole request
        // body) would keep the next request waiting: it is closed instead.
        let mut cx = Context::from_waker(Waker::noop());
        if !conn.drive(&mut cx) || !conn.sender.is_ready() {
            return;
        }
        if let Some(pool) = pool.upgrade() {
            pool.put(authority, conn);
        }
    }
}

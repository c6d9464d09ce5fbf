//! HTTP on a bare socket, for what a well-behaved client never sends (two
//! `Host` headers, a request head that never ends, nothing at all) and for
//! an upstream that answers exactly as scripted (a `101` to anything, a
//! response broken off half-way).

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

use super::PATIENCE;

/// `127.0.0.1:PORT` of a base URL such as `http://127.0.0.1:PORT`.
pub fn addr_of(base: &str) -> String {
    base.trim_start_matches("http://")
        .trim_start_matches("https://")
        .trim_end_matches('/')
        .to_owned()
}

/// A connection to `base` on which `bytes` were sent.
pub async fn send(base: &str, bytes: &[u8]) -> TcpStream {
    let mut stream = TcpStream::connect(addr_of(base)).await.expect("connect");
    stream.write_all(bytes).await.expect("send");
    stream
}

/// Reads up to the end of a response head (`\r\n\r\n`); returns it.
pub async fn read_head(stream: &mut TcpStream) -> String {
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    tokio::time::timeout(PATIENCE, async {
        while !head.ends_with(b"\r\n\r\n") {
            match stream.read(&mut byte).await {
                Ok(1) => head.push(byte[0]),
                _ => break,
            }
        }
    })
    .await
    .expect("a response head in time");
    String::from_utf8_lossy(&head).into_owned()
}

/// The status code of a response head (`0` when there is none).
pub fn status_of(head: &str) -> u16 {
    head.split(' ')
        .nth(1)
        .and_then(|code| code.parse().ok())
        .unwrap_or(0)
}

/// Sends `request` on a new connection to `base`; returns the status of
/// the answer.
pub async fn status(base: &str, request: &str) -> u16 {
    let mut stream = send(base, request.as_bytes()).await;
    status_of(&read_head(&mut stream).await)
}

/// Whether the peer closes `stream` (end of stream or reset) within
/// [`PATIENCE`]; anything it sends before is read and dropped.
pub async fn closed_by_peer(stream: &mut (impl AsyncRead + Unpin)) -> bool {
    let mut buffer = [0u8; 4096];
    tokio::time::timeout(PATIENCE, async {
        loop {
            match stream.read(&mut buffer).await {
                Ok(0) | Err(_) => return,
                Ok(_) => {}
            }
        }
    })
    .await
    .is_ok()
}

/// What a [`ScriptedUpstream`] saw on one connection.
#[derive(Debug, Clone, Default)]
pub struct Exchange {
    /// The request head, as received.
    pub head: String,
    /// Bytes received after the answer (through a switched protocol).
    pub after: Vec<u8>,
}

/// An upstream on 127.0.0.1 that reads each connection's request head,
/// writes whatever `answer` makes of it, and then, after a `101`, records
/// every byte that still arrives; other answers close the connection.
pub struct ScriptedUpstream {
    pub addr: SocketAddr,
    exchanges: Arc<Mutex<Vec<Exchange>>>,
}

impl ScriptedUpstream {
    pub async fn start(answer: impl Fn(&str) -> Vec<u8> + Send + Sync + 'static) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let exchanges = Arc::new(Mutex::new(Vec::new()));
        let answer = Arc::new(answer);
        let seen = exchanges.clone();
        tokio::spawn(async move {
            while let Ok((mut stream, _)) = listener.accept().await {
                let answer = answer.clone();
                let seen = seen.clone();
                tokio::spawn(async move {
                    let head = read_request_head(&mut stream).await;
                    let index = {
                        let mut seen = seen.lock().unwrap();
                        seen.push(Exchange {
                            head: head.clone(),
                            after: Vec::new(),
                        });
                        seen.len() - 1
                    };
                    let reply = answer(&head);
                    if stream.write_all(&reply).await.is_err() {
                        return;
                    }
                    if !reply.starts_with(b"HTTP/1.1 101") {
                        return;
                    }
                    let mut buffer = [0u8; 4096];
                    while let Ok(n @ 1..) = stream.read(&mut buffer).await {
                        seen.lock().unwrap()[index]
                            .after
                            .extend_from_slice(&buffer[..n]);
                    }
                });
            }
        });
        Self { addr, exchanges }
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Every connection's exchange so far.
    pub fn exchanges(&self) -> Vec<Exchange> {
        self.exchanges.lock().unwrap().clone()
    }
}

async fn read_request_head(stream: &mut TcpStream) -> String {
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        match stream.read(&mut byte).await {
            Ok(1) => head.push(byte[0]),
            _ => break,
        }
    }
    String::from_utf8_lossy(&head).into_owned()
}

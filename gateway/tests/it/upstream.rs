//! The upstream connections: kept alive and reused, replaced when the
//! upstream has closed them, both response framings read to their end.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use meingpt_auth::testing::MockIssuer;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

use crate::common::raw::ScriptedUpstream;
use crate::common::{Gateway, auth_toml, client};

async fn gateway_to(upstream_url: &str) -> (MockIssuer, Gateway) {
    let issuer = MockIssuer::start().await;
    let toml = format!(
        "{}[[route]]\nprefix = \"/\"\nupstream = \"{upstream_url}\"\n",
        auth_toml(&issuer)
    );
    let gateway = Gateway::start(&toml, &[]).await;
    (issuer, gateway)
}

/// An HTTP/1.1 upstream that keeps every connection open and answers each
/// request on it, alternately with a `Content-Length` and a chunked body
/// naming the request's number; counts the connections it accepted.
async fn keep_alive_upstream() -> (String, Arc<AtomicUsize>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let accepted = Arc::new(AtomicUsize::new(0));
    let counted = accepted.clone();
    tokio::spawn(async move {
        let answered = Arc::new(AtomicUsize::new(0));
        while let Ok((mut stream, _)) = listener.accept().await {
            counted.fetch_add(1, Ordering::SeqCst);
            let answered = answered.clone();
            tokio::spawn(async move {
                let mut received = Vec::new();
                let mut buffer = [0u8; 4096];
                loop {
                    while let Some(end) = received.windows(4).position(|w| w == b"\r\n\r\n") {
                        received.drain(..end + 4);
                        let n = answered.fetch_add(1, Ordering::SeqCst);
                        let body = format!("answer {n}\n");
                        let reply = if n.is_multiple_of(2) {
                            format!(
                                "HTTP/1.1 200 OK\r\nContent-Length: {}\r\n\r\n{body}",
                                body.len()
                            )
                        } else {
                            format!(
                                "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n{:x}\r\n{body}\r\n0\r\n\r\n",
                                body.len()
                            )
                        };
                        if stream.write_all(reply.as_bytes()).await.is_err() {
                            return;
                        }
                    }
                    match stream.read(&mut buffer).await {
                        Ok(n @ 1..) => received.extend_from_slice(&buffer[..n]),
                        _ => return,
                    }
                }
            });
        }
    });
    (url, accepted)
}

#[tokio::test]
async fn upstream_connections_are_kept_alive_and_reused() {
    let (upstream_url, accepted) = keep_alive_upstream().await;
    let (issuer, gateway) = gateway_to(&upstream_url).await;
    let token = issuer.token().sign();
    let http = client();

    for n in 0..20 {
        let answer = http
            .get(gateway.url("/x"))
            .header("x-meingpt-jwt", &token)
            .send()
            .await
            .unwrap();
        assert_eq!(answer.status(), 200);
        assert_eq!(answer.text().await.unwrap(), format!("answer {n}\n"));
    }

    assert_eq!(accepted.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn an_idle_connection_the_upstream_closed_is_replaced_without_failing_the_request() {
    // Answers one request per connection, then closes it (without saying so).
    let upstream =
        ScriptedUpstream::start(|_| b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\nok\n".to_vec())
            .await;
    let (issuer, gateway) = gateway_to(&upstream.url()).await;
    let token = issuer.token().sign();
    let http = client();

    for _ in 0..3 {
        let answer = http
            .get(gateway.url("/x"))
            .header("x-meingpt-jwt", &token)
            .send()
            .await
            .unwrap();
        assert_eq!(answer.status(), 200);
        assert_eq!(answer.text().await.unwrap(), "ok\n");
        // Let the upstream's close arrive before the next request.
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }

    assert_eq!(upstream.exchanges().len(), 3);
}

#[tokio::test]
async fn a_connection_still_sending_a_request_body_is_not_reused() {
    // Answers each request as soon as its head is read, and never reads a
    // body: a request body that does not fit the socket buffers is left
    // half sent.
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let upstream_url = format!("http://{}", listener.local_addr().unwrap());
    let accepted = Arc::new(AtomicUsize::new(0));
    let counted = accepted.clone();
    tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((mut stream, _)) = listener.accept().await {
            counted.fetch_add(1, Ordering::SeqCst);
            let mut head = Vec::new();
            let mut byte = [0u8; 1];
            while !head.ends_with(b"\r\n\r\n") {
                match stream.read(&mut byte).await {
                    Ok(1) => head.push(byte[0]),
                    _ => break,
                }
            }
            let _ = stream
                .write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\nok\n")
                .await;
            held.push(stream);
        }
    });
    let issuer = MockIssuer::start().await;
    let toml = format!(
        "max_body_bytes = 67108864\nresponse_timeout_secs = 5\n{}[[route]]\nprefix = \"/\"\nupstream = \"{upstream_url}\"\n",
        auth_toml(&issuer)
    );
    let gateway = Gateway::start(&toml, &[]).await;
    let token = issuer.token().sign();

    let upload = client()
        .post(gateway.url("/upload"))
        .header("x-meingpt-jwt", &token)
        .body(vec![b'x'; 32 * 1024 * 1024])
        .send();
    let uploading = tokio::spawn(upload);
    // The upload's answer has come back while its body is still on its way.
    while accepted.load(Ordering::SeqCst) == 0 {
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    let answer = client()
        .get(gateway.url("/x"))
        .header("x-meingpt-jwt", &token)
        .send()
        .await
        .unwrap();

    assert_eq!(answer.status(), 200);
    assert_eq!(answer.text().await.unwrap(), "ok\n");
    assert_eq!(accepted.load(Ordering::SeqCst), 2);
    uploading.abort();
}

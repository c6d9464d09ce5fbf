//! Client connections: timed from accept, bounded between requests, capped,
//! and shed idle-first so that a client with a request is still served.
//! The times are configured short; nothing here measures speed.

use std::time::Duration;

use meingpt_auth::testing::MockIssuer;
use tokio::net::TcpStream;

use crate::common::binary::{Running, command_with_open_file_limit};
use crate::common::raw::{self, closed_by_peer};
use crate::common::{Gateway, PATIENCE, Upstream, auth_toml, client, get, temp_dir};

async fn setup(connections: &str) -> (MockIssuer, Upstream, Gateway) {
    let issuer = MockIssuer::start().await;
    let upstream = Upstream::start().await;
    let toml = format!(
        "{}[connections]\n{connections}\n[[route]]\nprefix = \"/\"\nupstream = \"{}\"\n",
        auth_toml(&issuer),
        upstream.url()
    );
    let gateway = Gateway::start(&toml, &[]).await;
    (issuer, upstream, gateway)
}

#[tokio::test]
async fn connection_without_a_complete_request_head_is_closed_after_the_header_read_timeout() {
    let (_issuer, upstream, gateway) = setup("header_read_timeout_secs = 0.3").await;

    for (what, sent) in [
        ("nothing", &b""[..]),
        (
            "only the HTTP/2 preface",
            b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n",
        ),
        (
            "a request head that never ends",
            b"GET /x HTTP/1.1\r\nHost: a\r\nX-Slow: 1\r\n",
        ),
    ] {
        let mut stream = raw::send(&gateway.base, sent).await;
        assert!(
            closed_by_peer(&mut stream).await,
            "a connection that sent {what} was still open after {PATIENCE:?}"
        );
    }
    assert_eq!(upstream.count(), 0);
}

#[tokio::test]
async fn idle_keep_alive_connection_is_closed_after_the_idle_timeout() {
    let (_issuer, _upstream, gateway) =
        setup("header_read_timeout_secs = 600\nidle_timeout_secs = 0.3").await;

    let mut kept = raw::send(&gateway.base, b"GET /healthz HTTP/1.1\r\nHost: a\r\n\r\n").await;
    let head = raw::read_head(&mut kept).await;
    assert_eq!(raw::status_of(&head), 200, "{head}");

    assert!(
        closed_by_peer(&mut kept).await,
        "an idle keep-alive connection was still open after {PATIENCE:?}"
    );
}

#[tokio::test]
async fn http2_connection_without_open_streams_is_closed_after_the_idle_timeout() {
    let (_issuer, _upstream, gateway) =
        setup("header_read_timeout_secs = 600\nidle_timeout_secs = 0.3").await;
    let stream = TcpStream::connect(raw::addr_of(&gateway.base))
        .await
        .unwrap();
    let (mut sender, connection) = hyper::client::conn::http2::handshake(
        hyper_util::rt::TokioExecutor::new(),
        hyper_util::rt::TokioIo::new(stream),
    )
    .await
    .expect("an HTTP/2 connection");
    let connection = tokio::spawn(connection);

    let request = http::Request::get(gateway.url("/healthz"))
        .body(http_body_util::Empty::<bytes::Bytes>::new())
        .unwrap();
    let response = sender.send_request(request).await.expect("an answer");
    assert_eq!(response.status(), 200);
    drop(response);

    tokio::time::timeout(PATIENCE, connection)
        .await
        .expect("the gateway closed the idle HTTP/2 connection")
        .unwrap()
        .ok();
}

/// Connections that have sent nothing; `n` of them, opened one after another.
async fn idle_connections(base: &str, n: usize) -> Vec<TcpStream> {
    let mut idle = Vec::with_capacity(n);
    for _ in 0..n {
        idle.push(raw::send(base, b"").await);
    }
    idle
}

/// How many of `connections` the gateway closes within [`PATIENCE`], once
/// at least `expected` are closed.
async fn count_closed(connections: &mut [TcpStream], expected: usize) -> usize {
    use tokio::io::AsyncReadExt;
    let mut closed = vec![false; connections.len()];
    let deadline = tokio::time::Instant::now() + PATIENCE;
    while closed.iter().filter(|c| **c).count() < expected && tokio::time::Instant::now() < deadline
    {
        for (stream, closed) in connections.iter_mut().zip(closed.iter_mut()) {
            if *closed {
                continue;
            }
            let mut byte = [0u8; 1];
            let read = tokio::time::timeout(Duration::from_millis(20), stream.read(&mut byte));
            if matches!(read.await, Ok(Ok(0) | Err(_))) {
                *closed = true;
            }
        }
    }
    closed.iter().filter(|c| **c).count()
}

#[tokio::test]
async fn at_the_connection_cap_idle_connections_are_closed_for_a_client_with_a_request() {
    let (_issuer, _upstream, gateway) = setup("max = 4\nheader_read_timeout_secs = 600").await;
    let mut idle = idle_connections(&gateway.base, 10).await;

    let answer = client()
        .get(gateway.url("/healthz"))
        .timeout(PATIENCE)
        .send()
        .await
        .expect("a client with a request is served at the cap");

    assert_eq!(answer.status(), 200);
    // The cap is 4 and the client holds one: at least 7 of the 10 idle
    // connections had to go.
    let closed = count_closed(&mut idle, 7).await;
    assert!(
        closed >= 7,
        "only {closed} of 10 idle connections were closed"
    );
}

#[tokio::test]
async fn at_the_connection_cap_a_connection_with_a_request_in_flight_is_kept() {
    let (issuer, upstream, gateway) = setup("max = 2\nheader_read_timeout_secs = 600").await;
    let token = issuer.token().sign();
    let url = gateway.url("/hold");
    let held = tokio::spawn(async move { get(&url, &[("x-meingpt-jwt", &token)]).await });
    upstream.wait_for_requests(1).await;
    let mut idle = idle_connections(&gateway.base, 1).await;

    let answer = client()
        .get(gateway.url("/healthz"))
        .timeout(PATIENCE)
        .send()
        .await
        .expect("a client with a request is served at the cap");
    assert_eq!(answer.status(), 200);
    assert!(
        closed_by_peer(&mut idle[0]).await,
        "the idle connection was kept"
    );

    upstream.open_hold_gate();
    let held = tokio::time::timeout(PATIENCE, held)
        .await
        .expect("the held request finished")
        .unwrap();
    assert_eq!(held.status, 200);
    assert_eq!(held.body, "held and answered\n");
}

#[test]
fn out_of_file_descriptors_idle_connections_are_closed_for_a_client_with_a_request() {
    // The binary with 64 file descriptors and its default settings: the
    // idle connections below use up every descriptor it has.
    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(async {
        let issuer = MockIssuer::start().await;
        let config = temp_dir("fd-limit").join("gateway.toml");
        std::fs::write(&config, auth_toml(&issuer)).unwrap();
        let mut running = Running::spawn(command_with_open_file_limit(
            64,
            &["--config", config.to_str().unwrap()],
            &[("LISTEN_ADDR", "127.0.0.1:0")],
        ));
        let base = running.wait_for_listening();
        let _idle = idle_connections(&base, 100).await;

        let answer = client()
            .get(format!("{base}/healthz"))
            .timeout(PATIENCE)
            .send()
            .await
            .expect("a client with a request is served with every descriptor in use");

        assert_eq!(answer.status(), 200);
    });
}

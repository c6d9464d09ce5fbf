//! Streaming: Server-Sent Events event by event, WebSocket pass-through.

use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use meingpt_auth::testing::MockIssuer;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;

use crate::common::{Gateway, PATIENCE, Upstream, auth_toml, client};

async fn setup() -> (MockIssuer, Upstream, Gateway) {
    let issuer = MockIssuer::start().await;
    let upstream = Upstream::start().await;
    let toml = format!(
        "{}[[route]]\nprefix = \"/\"\nupstream = \"{}\"\n",
        auth_toml(&issuer),
        upstream.url()
    );
    let gateway = Gateway::start(&toml, &[]).await;
    (issuer, upstream, gateway)
}

#[tokio::test]
async fn sse_first_event_arrives_before_the_upstream_sends_the_second() {
    let (issuer, upstream, gateway) = setup().await;
    let token = issuer.token().sign();

    let mut response = client()
        .get(gateway.url("/sse"))
        .header("x-meingpt-jwt", &token)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["content-type"], "text/event-stream");

    // The upstream holds the second event back until the test opens the
    // gate, so a buffering proxy never delivers the first: this times out.
    let first = tokio::time::timeout(PATIENCE, response.chunk())
        .await
        .expect("the first event arrives while the upstream holds the second")
        .unwrap()
        .expect("a first chunk");
    assert_eq!(String::from_utf8_lossy(&first), "data: one\n\n");

    upstream.open_sse_gate();
    let second = tokio::time::timeout(PATIENCE, response.chunk())
        .await
        .unwrap()
        .unwrap()
        .expect("a second chunk");
    assert_eq!(String::from_utf8_lossy(&second), "data: two\n\n");
}

#[tokio::test]
async fn websocket_upgrade_passes_through_with_the_identity_headers() {
    let (issuer, _upstream, gateway) = setup().await;
    let token = issuer.token().sub("ws-user").sign();
    let url = gateway.url("/ws").replace("http://", "ws://");
    let mut request = url.into_client_request().unwrap();
    request
        .headers_mut()
        .insert("x-meingpt-jwt", token.parse().unwrap());

    let (mut socket, response) =
        tokio::time::timeout(PATIENCE, tokio_tungstenite::connect_async(request))
            .await
            .unwrap()
            .expect("the WebSocket handshake succeeds through the gateway");
    assert_eq!(response.status(), 101);

    let greeting = socket.next().await.unwrap().unwrap();
    assert_eq!(greeting, Message::text("user ws-user"));
    for text in ["hello", "again"] {
        socket.send(Message::text(text)).await.unwrap();
        let echo = tokio::time::timeout(Duration::from_secs(10), socket.next())
            .await
            .unwrap()
            .unwrap()
            .unwrap();
        assert_eq!(echo, Message::text(format!("echo {text}")));
    }
    socket.close(None).await.unwrap();
}

#[tokio::test]
async fn websocket_upgrade_without_a_token_is_refused() {
    let (_issuer, upstream, gateway) = setup().await;
    let url = gateway.url("/ws").replace("http://", "ws://");

    let error = tokio_tungstenite::connect_async(url)
        .await
        .expect_err("the handshake is refused");

    match error {
        tokio_tungstenite::tungstenite::Error::Http(response) => {
            assert_eq!(response.status(), 401)
        }
        other => panic!("expected an HTTP refusal, got {other}"),
    }
    assert_eq!(upstream.count(), 0);
}

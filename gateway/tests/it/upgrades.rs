//! Protocol upgrades: only `websocket` is tunnelled unless a route lists
//! others; a refused upgrade is forwarded as the plain request it also is.

use meingpt_auth::testing::MockIssuer;

use crate::common::raw::{self, ScriptedUpstream};
use crate::common::{Gateway, PATIENCE, auth_toml};

/// An upstream that switches to whatever protocol a request offers, and
/// answers anything else with `200 plain`.
async fn switching_upstream() -> ScriptedUpstream {
    ScriptedUpstream::start(|head| {
        let offered = head
            .lines()
            .find_map(|line| {
                let (name, value) = line.split_once(':')?;
                name.eq_ignore_ascii_case("upgrade")
                    .then(|| value.trim().to_owned())
            });
        match offered {
            Some(protocol) => format!(
                "HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: {protocol}\r\n\r\n"
            )
            .into_bytes(),
            None => b"HTTP/1.1 200 OK\r\nContent-Length: 6\r\nConnection: close\r\n\r\nplain\n".to_vec(),
        }
    })
    .await
}

async fn setup(upstream: &ScriptedUpstream) -> (MockIssuer, Gateway) {
    let issuer = MockIssuer::start().await;
    let toml = format!(
        "{}[[route]]\nprefix = \"/public\"\nupstream = \"{url}\"\npublic = true\n\
         [[route]]\nprefix = \"/grpc-web\"\nupstream = \"{url}\"\npublic = true\n\
         upgrades = [\"websocket\", \"h2c\"]\n\
         [[route]]\nprefix = \"/none\"\nupstream = \"{url}\"\npublic = true\nupgrades = []\n",
        auth_toml(&issuer),
        url = upstream.url()
    );
    (issuer, Gateway::start(&toml, &[]).await)
}

const H2C_UPGRADE: &str = "Connection: Upgrade, HTTP2-Settings\r\nUpgrade: h2c\r\n\
                           HTTP2-Settings: AAMAAABkAARAAAAAAAIAAAAA\r\n";

/// What a client sends through a tunnel the gateway should not have opened.
const FORGED: &str = "GET /admin/users HTTP/1.1\r\nHost: app\r\nX-Auth-Request-User: admin-1\r\n\
                      X-meinGPT-Role: admin\r\n\r\n";

#[tokio::test]
async fn h2c_upgrade_on_a_route_that_does_not_list_it_is_forwarded_as_a_plain_request() {
    let upstream = switching_upstream().await;
    let (_issuer, gateway) = setup(&upstream).await;

    let mut stream = raw::send(
        &gateway.base,
        format!("GET /public/x HTTP/1.1\r\nHost: app\r\n{H2C_UPGRADE}\r\n").as_bytes(),
    )
    .await;
    let head = raw::read_head(&mut stream).await;

    assert_eq!(raw::status_of(&head), 200, "{head}");
    // The connection still speaks HTTP/1.1 to the gateway: what follows is
    // the next request, decided on its own (no `/admin` route: 404).
    use tokio::io::AsyncWriteExt;
    stream.write_all(FORGED.as_bytes()).await.unwrap();
    let next = raw::read_head(&mut stream).await;
    assert_eq!(raw::status_of(&next), 404, "{next}");
    let exchanges = upstream.exchanges();
    assert_eq!(exchanges.len(), 1, "{exchanges:?}");
    let seen = exchanges[0].head.to_ascii_lowercase();
    assert!(seen.starts_with("get /public/x "), "{seen}");
    assert!(
        !seen.contains("upgrade"),
        "the upstream was asked to switch: {seen}"
    );
    assert!(!seen.contains("http2-settings"), "{seen}");
    assert!(exchanges[0].after.is_empty());
}

#[tokio::test]
async fn websocket_offered_together_with_another_protocol_is_not_tunnelled() {
    let upstream = switching_upstream().await;
    let (_issuer, gateway) = setup(&upstream).await;

    let status = raw::status(
        &gateway.base,
        "GET /public/x HTTP/1.1\r\nHost: app\r\nConnection: Upgrade\r\n\
         Upgrade: websocket, h2c\r\n\r\n",
    )
    .await;

    assert_eq!(status, 200);
    let seen = upstream.exchanges()[0].head.to_ascii_lowercase();
    assert!(!seen.contains("upgrade"), "{seen}");
}

#[tokio::test]
async fn route_with_no_upgrades_forwards_even_websocket_as_a_plain_request() {
    let upstream = switching_upstream().await;
    let (_issuer, gateway) = setup(&upstream).await;

    let status = raw::status(
        &gateway.base,
        "GET /none/ws HTTP/1.1\r\nHost: app\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\
         Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n",
    )
    .await;

    assert_eq!(status, 200);
    let seen = upstream.exchanges()[0].head.to_ascii_lowercase();
    assert!(!seen.contains("upgrade"), "{seen}");
}

#[tokio::test]
async fn route_that_lists_h2c_tunnels_it() {
    let upstream = switching_upstream().await;
    let (_issuer, gateway) = setup(&upstream).await;

    let mut stream = raw::send(
        &gateway.base,
        format!("GET /grpc-web/x HTTP/1.1\r\nHost: app\r\n{H2C_UPGRADE}\r\n").as_bytes(),
    )
    .await;
    let head = raw::read_head(&mut stream).await;
    assert_eq!(raw::status_of(&head), 101, "{head}");
    use tokio::io::AsyncWriteExt;
    stream
        .write_all(b"bytes of the new protocol")
        .await
        .unwrap();

    tokio::time::timeout(PATIENCE, async {
        while upstream.exchanges()[0].after != b"bytes of the new protocol" {
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
    })
    .await
    .expect("the bytes went through the tunnel");
    let seen = upstream.exchanges()[0].head.to_ascii_lowercase();
    assert!(seen.contains("upgrade: h2c"), "{seen}");
}

#[tokio::test]
async fn upstream_that_switches_protocols_unasked_gets_a_502() {
    // This upstream answers 101 to everything, also to a plain request.
    let upstream = ScriptedUpstream::start(|_| {
        b"HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: h2c\r\n\r\n".to_vec()
    })
    .await;
    let (_issuer, gateway) = setup(&upstream).await;

    let plain = raw::status(
        &gateway.base,
        "GET /public/x HTTP/1.1\r\nHost: app\r\nConnection: close\r\n\r\n",
    )
    .await;
    // Asked for websocket, answered with h2c.
    let other = raw::status(
        &gateway.base,
        "GET /public/x HTTP/1.1\r\nHost: app\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\
         Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n",
    )
    .await;

    assert_eq!(plain, 502);
    assert_eq!(other, 502);
}

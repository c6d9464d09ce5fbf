//! Embed mode over HTTP: the first-load page, the session endpoint and its
//! cookie, what the upstream gets, the refresh script in pages, the
//! cross-site rules, the refusals, and WebSockets that end with their
//! session. (The browser tests of `tests/rig/embed` run the same flow in
//! Chromium.)

use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::Router;
use axum::http::HeaderMap;
use axum::response::IntoResponse;
use axum::routing::get;
use futures_util::{SinkExt, StreamExt};
use meingpt_auth::testing::MockIssuer;
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;

use crate::common::{Answer, Gateway, PATIENCE, Upstream, auth_toml, client};

const MEINGPT: &str = "https://meingpt.example";

/// An app that knows nothing of meinGPT: a page (framing forbidden, a
/// `Lax` cookie of its own), JSON, and an echo of the headers it got.
struct App {
    addr: std::net::SocketAddr,
    seen: Arc<Mutex<Vec<HeaderMap>>>,
}

const PAGE: &str =
    "<!doctype html><html><head><title>Notes</title></head><body><p>Notes</p></body></html>";

impl App {
    async fn start() -> Self {
        let seen: Arc<Mutex<Vec<HeaderMap>>> = Arc::default();
        let record = seen.clone();
        let app = Router::new()
            .route(
                "/page",
                get(|| async {
                    (
                        [
                            ("content-type", "text/html; charset=utf-8"),
                            ("x-frame-options", "DENY"),
                            ("set-cookie", "pref=1; Path=/; SameSite=Lax"),
                            ("etag", "\"v1\""),
                        ],
                        PAGE,
                    )
                }),
            )
            .route(
                "/fixate",
                get(|| async {
                    let mut headers = HeaderMap::new();
                    for cookie in [
                        "__Host-meingpt-session=someone.elses.token; Path=/; Secure",
                        "__host-MEINGPT-session=x.y.z; Path=/",
                        "theme=dark; Path=/",
                    ] {
                        headers.append("set-cookie", cookie.parse().unwrap());
                    }
                    (headers, "ok")
                }),
            )
            .route(
                "/data.json",
                get(|| async { ([("content-type", "application/json")], "{\"n\":1}") }),
            )
            .fallback(move |headers: HeaderMap| {
                let record = record.clone();
                async move {
                    let echoed: serde_json::Map<String, Value> = headers
                        .iter()
                        .map(|(name, value)| {
                            (name.to_string(), json!(value.to_str().unwrap_or("")))
                        })
                        .collect();
                    record.lock().unwrap().push(headers);
                    axum::Json(Value::Object(echoed)).into_response()
                }
            });
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, app).await });
        Self { addr, seen }
    }

    fn requests(&self) -> usize {
        self.seen.lock().unwrap().len()
    }
}

struct World {
    issuer: MockIssuer,
    app: App,
    live: Upstream,
    gateway: Gateway,
}

impl World {
    async fn start() -> Self {
        let issuer = MockIssuer::start().await;
        let app = App::start().await;
        let live = Upstream::start().await;
        let toml = format!(
            "{auth}\n[embed]\nmeingpt_origins = [\"{MEINGPT}\"]\n\n\
             [[route]]\nprefix = \"/\"\nupstream = \"http://{app}\"\nembed = true\n\
             embed_partition_cookies = true\n\n\
             [[route]]\nprefix = \"/admin\"\nupstream = \"http://{app}\"\nembed = true\n\
             roles = [\"admin\"]\n\n\
             [[route]]\nprefix = \"/live\"\nupstream = \"{live}\"\nembed = true\nstrip_prefix = true\n\n\
             [[route]]\nprefix = \"/untouched\"\nupstream = \"http://{app}\"\nembed = true\n\
             embed_script = false\nstrip_prefix = true\n",
            auth = auth_toml(&issuer),
            app = app.addr,
            live = live.url(),
        );
        let gateway = Gateway::start(&toml, &[]).await;
        Self {
            issuer,
            app,
            live,
            gateway,
        }
    }

    fn host(&self) -> String {
        self.gateway.base.trim_start_matches("http://").to_owned()
    }

    /// Makes a session for `token` at the route under `prefix`, as the
    /// first-load page does.
    async fn sign_in(&self, prefix: &str, token: &str) -> Answer {
        Answer::read(
            client()
                .post(self.gateway.url(&format!("{prefix}/_meingpt/session")))
                .header("sec-fetch-site", "same-origin")
                .header("content-type", "application/json")
                .body(json!({ "token": token }).to_string())
                .send()
                .await
                .unwrap(),
        )
        .await
    }

    /// The `Cookie` pair of a session for `token`.
    async fn session(&self, token: &str) -> String {
        let answer = self.sign_in("", token).await;
        assert_eq!(answer.status, 200, "{}", answer.body);
        let set = answer.header("set-cookie").expect("a session cookie");
        set.split(';').next().unwrap().to_owned()
    }
}

fn now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

/// A browser loading `path` into meinGPT's frame.
async fn navigate(world: &World, path: &str, cookie: Option<&str>) -> Answer {
    let mut request = client()
        .get(world.gateway.url(path))
        .header("sec-fetch-site", "cross-site")
        .header("sec-fetch-mode", "navigate")
        .header("sec-fetch-dest", "iframe")
        .header("accept", "text/html");
    if let Some(cookie) = cookie {
        request = request.header("cookie", cookie);
    }
    Answer::read(request.send().await.unwrap()).await
}

#[tokio::test]
async fn a_page_opened_without_a_session_gets_the_first_load_page_with_a_strict_policy() {
    let world = World::start().await;
    let answer = navigate(&world, "/page?x=1", None).await;
    assert_eq!(answer.status, 401);
    assert_eq!(
        answer.header("content-type"),
        Some("text/html; charset=utf-8")
    );
    assert!(
        answer.body.contains("id=\"meingpt-embed\""),
        "{}",
        answer.body
    );
    assert!(
        answer.body.contains(MEINGPT),
        "the page knows meinGPT's origin"
    );
    let csp = answer.header("content-security-policy").unwrap();
    assert!(
        csp.starts_with("default-src 'none'; script-src 'nonce-"),
        "{csp}"
    );
    assert!(
        csp.ends_with(&format!("frame-ancestors {MEINGPT}")),
        "{csp}"
    );
    assert_eq!(answer.header("cache-control"), Some("no-store"));
    assert!(
        answer
            .header("www-authenticate")
            .unwrap()
            .starts_with("Bearer")
    );
    assert_eq!(world.app.requests(), 0, "the app saw nothing");

    // A script's request keeps the plain 401 it can act on.
    let answer = Answer::read(
        client()
            .get(world.gateway.url("/api/notes"))
            .header("sec-fetch-site", "same-origin")
            .header("sec-fetch-mode", "cors")
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(answer.status, 401);
    assert!(!answer.body.contains("meingpt-embed"));
}

#[tokio::test]
async fn the_session_endpoint_sets_a_partitioned_host_cookie_that_lives_as_long_as_the_token() {
    let world = World::start().await;
    let token = world
        .issuer
        .demo_member()
        .expires_in(Duration::from_secs(600))
        .sign();
    let answer = world.sign_in("", &token).await;
    assert_eq!(answer.status, 200, "{}", answer.body);
    let cookie = answer.header("set-cookie").unwrap();
    let (pair, attributes) = cookie.split_once("; ").unwrap();
    assert_eq!(pair, format!("__Host-meingpt-session={token}"));
    assert!(
        attributes.starts_with("Path=/; Secure; HttpOnly; SameSite=None; Partitioned; Max-Age="),
        "{attributes}"
    );
    let max_age: i64 = attributes.rsplit('=').next().unwrap().parse().unwrap();
    assert!((598..=600).contains(&max_age), "Max-Age={max_age}");
    let expires_at = answer.json()["expiresAt"].as_i64().unwrap();
    assert!((expires_at / 1000 - now() - 600).abs() <= 2, "{expires_at}");
    assert_eq!(answer.header("cache-control"), Some("no-store"));

    // The first-load page checks the cookie came back.
    let checked = Answer::read(
        client()
            .get(world.gateway.url("/_meingpt/session"))
            .header("sec-fetch-site", "same-origin")
            .header("cookie", pair)
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(checked.status, 200, "{}", checked.body);
    assert_eq!(checked.json()["expiresAt"], expires_at);
    assert_eq!(checked.header("set-cookie"), None);
}

#[tokio::test]
async fn requests_with_the_cookie_reach_the_app_with_the_identity_and_without_the_cookie() {
    let world = World::start().await;
    let token = world.issuer.demo_member().sign();
    let session = world.session(&token).await;
    let answer = Answer::read(
        client()
            .get(world.gateway.url("/api/notes"))
            .header("sec-fetch-site", "same-origin")
            .header("cookie", format!("theme=dark; {session}; _xsrf=2"))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(answer.status, 200, "{}", answer.body);
    let seen = answer.json();
    assert_eq!(seen["x-auth-request-user"], "member-1");
    assert_eq!(seen["x-meingpt-role"], "member");
    assert_eq!(
        seen["host"],
        world.host(),
        "the app is served at the browser's host"
    );
    assert_eq!(seen["cookie"], "theme=dark; _xsrf=2", "{seen}");
    assert!(
        !answer.body.contains(&token),
        "the app never sees the token"
    );
    assert_eq!(answer.header("cache-control"), Some("private"));
}

#[tokio::test]
async fn pages_get_the_refresh_script_and_lose_their_frame_ban_while_other_answers_pass_as_they_are()
 {
    let world = World::start().await;
    let token = world.issuer.demo_member().sign();
    let session = world.session(&token).await;
    let page = navigate(&world, "/page", Some(&session)).await;
    assert_eq!(page.status, 200);
    assert!(
        page.body.starts_with(
            "<!doctype html><html><head><script src=\"/_meingpt/embed.js\" data-expires-at=\""
        ),
        "{}",
        page.body
    );
    assert!(
        page.body
            .ends_with("</script><title>Notes</title></head><body><p>Notes</p></body></html>")
    );
    assert_eq!(page.header("x-frame-options"), None);
    assert_eq!(
        page.header("content-security-policy"),
        Some(format!("frame-ancestors {MEINGPT}").as_str())
    );
    assert_eq!(page.header("content-length"), None);
    assert_eq!(page.header("etag"), Some("W/\"v1\""));
    assert_eq!(
        page.header("set-cookie"),
        Some("pref=1; Path=/; Secure; SameSite=None; Partitioned"),
        "the app's own cookie works in the frame"
    );

    // The app was asked for the page as is (it is rewritten as it streams).
    let echoed = Answer::read(
        client()
            .get(world.gateway.url("/echo"))
            .header("sec-fetch-site", "cross-site")
            .header("sec-fetch-mode", "navigate")
            .header("sec-fetch-dest", "iframe")
            .header("accept-encoding", "gzip, br")
            .header("cookie", &session)
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(echoed.json()["accept-encoding"], "identity");

    // JSON, and the same page fetched by a script, pass byte for byte.
    let data = Answer::read(
        client()
            .get(world.gateway.url("/data.json"))
            .header("sec-fetch-site", "same-origin")
            .header("sec-fetch-mode", "cors")
            .header("cookie", &session)
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(data.body, "{\"n\":1}");
    assert_eq!(data.header("content-length"), Some("7"));
    let fetched = Answer::read(
        client()
            .get(world.gateway.url("/page"))
            .header("sec-fetch-site", "same-origin")
            .header("sec-fetch-mode", "cors")
            .header("cookie", &session)
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(fetched.body, PAGE);

    // The script itself.
    let script = Answer::read(
        client()
            .get(world.gateway.url("/_meingpt/embed.js"))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(script.status, 200);
    assert_eq!(
        script.header("content-type"),
        Some("text/javascript; charset=utf-8")
    );
    assert!(script.body.contains("MEINGPT_TOKEN_REFRESH"));
    assert!(script.body.contains(MEINGPT));
}

#[tokio::test]
async fn with_embed_script_off_pages_pass_as_they_came_and_a_page_without_a_session_signs_in_again()
{
    let world = World::start().await;
    let session = world.session(&world.issuer.demo_member().sign()).await;
    let page = navigate(&world, "/untouched/page", Some(&session)).await;
    assert_eq!(page.status, 200);
    assert_eq!(page.body, PAGE, "the page came as the app sent it");
    assert_eq!(
        page.header("content-length"),
        Some(PAGE.len().to_string().as_str())
    );
    assert_eq!(page.header("etag"), Some("\"v1\""));
    // Still framed by meinGPT only.
    assert_eq!(page.header("x-frame-options"), None);
    assert_eq!(
        page.header("content-security-policy"),
        Some(format!("frame-ancestors {MEINGPT}").as_str())
    );
    // The app is asked for its page as the browser asked.
    let echoed = Answer::read(
        client()
            .get(world.gateway.url("/untouched/echo"))
            .header("sec-fetch-site", "cross-site")
            .header("sec-fetch-mode", "navigate")
            .header("sec-fetch-dest", "iframe")
            .header("accept-encoding", "gzip, br")
            .header("cookie", &session)
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(echoed.json()["accept-encoding"], "gzip, br");

    // Once the browser dropped the expired cookie, the next page load
    // gets the first-load page, which signs in again.
    let requests = world.app.requests();
    let again = navigate(&world, "/untouched/page", None).await;
    assert_eq!(again.status, 401);
    assert!(
        again.body.contains("id=\"meingpt-embed\""),
        "{}",
        again.body
    );
    assert!(again.body.contains("/untouched/_meingpt/session"));
    assert_eq!(world.app.requests(), requests, "the app saw nothing");
}

#[tokio::test]
async fn server_sent_events_stream_event_by_event_and_outlive_the_session() {
    let world = World::start().await;
    let token = world
        .issuer
        .demo_member()
        .expires_in(Duration::from_secs(3))
        .sign();
    let session = world.session(&token).await;
    // An `EventSource` of the app's page.
    let mut response = client()
        .get(world.gateway.url("/live/sse"))
        .header("sec-fetch-site", "same-origin")
        .header("sec-fetch-mode", "cors")
        .header("sec-fetch-dest", "empty")
        .header("accept", "text/event-stream")
        .header("cookie", &session)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["content-type"], "text/event-stream");
    assert_eq!(
        world.live.last().header("x-auth-request-user"),
        Some("member-1")
    );
    let first = tokio::time::timeout(PATIENCE, response.chunk())
        .await
        .expect("the first event before the second is sent")
        .unwrap()
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&first), "data: one\n\n");

    // The token expires; the stream it opened keeps flowing.
    let left = world_expiry(&token) - now() + 1;
    tokio::time::sleep(Duration::from_secs(left.max(0) as u64)).await;
    world.live.open_sse_gate();
    let second = tokio::time::timeout(PATIENCE, response.chunk())
        .await
        .expect("the second event")
        .unwrap()
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&second), "data: two\n\n");
    assert!(now() > world_expiry(&token));
}

#[tokio::test]
async fn a_session_cannot_be_planted_or_ended_from_another_site() {
    let world = World::start().await;
    let attacker = world.issuer.token().sub("mallory").sign();
    for (what, headers) in [
        ("a cross-site fetch", vec![("sec-fetch-site", "cross-site")]),
        ("a same-site fetch", vec![("sec-fetch-site", "same-site")]),
        (
            "an old browser on another origin",
            vec![("origin", "https://evil.example")],
        ),
        ("no browser at all", vec![]),
    ] {
        let mut request = client()
            .post(world.gateway.url("/_meingpt/session"))
            .header("content-type", "application/json")
            .body(json!({ "token": attacker }).to_string());
        for (name, value) in &headers {
            request = request.header(*name, *value);
        }
        let answer = Answer::read(request.send().await.unwrap()).await;
        assert_eq!(answer.status, 403, "{what}: {}", answer.body);
        assert_eq!(answer.header("set-cookie"), None, "{what}");
    }
    // A form post (no JSON) from anywhere is no session either.
    let answer = Answer::read(
        client()
            .post(world.gateway.url("/_meingpt/session"))
            .header("sec-fetch-site", "same-origin")
            .header("content-type", "application/x-www-form-urlencoded")
            .body(format!("token={attacker}"))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(answer.status, 415);
    assert_eq!(answer.header("set-cookie"), None);

    // Nor can the app set the session cookie (under any case of its name).
    let session = world.session(&world.issuer.demo_member().sign()).await;
    let answer = Answer::read(
        client()
            .get(world.gateway.url("/fixate"))
            .header("sec-fetch-site", "same-origin")
            .header("cookie", &session)
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(answer.status, 200);
    let set: Vec<&str> = answer
        .headers
        .get_all("set-cookie")
        .iter()
        .map(|value| value.to_str().unwrap())
        .collect();
    assert_eq!(
        set,
        ["theme=dark; Path=/; Secure; SameSite=None; Partitioned"],
        "only the app's own cookie"
    );

    // Logout: same origin only; it clears the cookie with its attributes.
    let answer = Answer::read(
        client()
            .post(world.gateway.url("/_meingpt/logout"))
            .header("sec-fetch-site", "cross-site")
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(answer.status, 403);
    let answer = Answer::read(
        client()
            .post(world.gateway.url("/_meingpt/logout"))
            .header("sec-fetch-site", "same-origin")
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(answer.status, 204);
    assert_eq!(
        answer.header("set-cookie"),
        Some(
            "__Host-meingpt-session=; Path=/; Secure; HttpOnly; SameSite=None; Partitioned; \
             Max-Age=0"
        )
    );
}

#[tokio::test]
async fn cookie_requests_from_another_site_are_refused_before_the_app_sees_them() {
    let world = World::start().await;
    let session = world.session(&world.issuer.demo_member().sign()).await;
    let host = world.host();
    let before = world.app.requests();
    // Another Custom AI App on meinGPT's page shares the cookie's partition.
    let post = Answer::read(
        client()
            .post(world.gateway.url("/notes"))
            .header("sec-fetch-site", "cross-site")
            .header("sec-fetch-mode", "navigate")
            .header("sec-fetch-dest", "iframe")
            .header("origin", "https://other-app.example")
            .header("cookie", &session)
            .body("note=planted")
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(post.status, 403, "{}", post.body);
    let read = Answer::read(
        client()
            .get(world.gateway.url("/api/notes"))
            .header("sec-fetch-site", "cross-site")
            .header("sec-fetch-mode", "cors")
            .header("cookie", &session)
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(read.status, 403, "{}", read.body);
    assert_eq!(world.app.requests(), before, "the app saw none of them");

    // The same POST from the app's own page passes.
    let own = Answer::read(
        client()
            .post(world.gateway.url("/notes"))
            .header("sec-fetch-site", "same-origin")
            .header("origin", format!("http://{host}"))
            .header("cookie", &session)
            .body("note=mine")
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(own.status, 200, "{}", own.body);
    assert_eq!(world.app.requests(), before + 1);
}

#[tokio::test]
async fn another_organizations_token_a_member_on_an_admin_route_and_a_tampered_cookie_are_refused()
{
    let world = World::start().await;
    let other = MockIssuer::for_organization("org-other").await;
    let answer = world.sign_in("", &other.demo_admin().sign()).await;
    assert_eq!(answer.status, 401, "{}", answer.body);
    assert!(
        answer
            .header("www-authenticate")
            .unwrap()
            .contains("invalid_token")
    );
    assert_eq!(answer.header("set-cookie"), None);

    let member = world.issuer.demo_member().sign();
    let answer = world.sign_in("/admin", &member).await;
    assert_eq!(answer.status, 403, "{}", answer.body);
    assert_eq!(answer.header("set-cookie"), None);
    let admin = world
        .sign_in("/admin", &world.issuer.demo_admin().sign())
        .await;
    assert_eq!(admin.status, 200, "{}", admin.body);
    // A member's session does not open the admin route either.
    let session = world.session(&member).await;
    let page = navigate(&world, "/admin/page", Some(&session)).await;
    assert_eq!(page.status, 403);
    assert!(
        page.body.contains("meingpt-embed"),
        "a page refused to the user gets the page that says so"
    );

    // The member's token with the role claim edited to admin.
    let (header, rest) = member.split_once('.').unwrap();
    let (payload, signature) = rest.split_once('.').unwrap();
    use base64::Engine;
    let engine = base64::engine::general_purpose::URL_SAFE_NO_PAD;
    let claims = String::from_utf8(engine.decode(payload).unwrap()).unwrap();
    let edited = engine.encode(claims.replace("\"member\"", "\"admin\""));
    let tampered = format!("__Host-meingpt-session={header}.{edited}.{signature}");
    let before = world.app.requests();
    let answer = Answer::read(
        client()
            .get(world.gateway.url("/admin/api"))
            .header("sec-fetch-site", "same-origin")
            .header("cookie", &tampered)
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(answer.status, 401);
    assert!(
        answer
            .header("www-authenticate")
            .unwrap()
            .contains("invalid_token")
    );
    // A page load with it signs in again instead of showing the app.
    let page = navigate(&world, "/admin/page", Some(&tampered)).await;
    assert!(page.body.contains("meingpt-embed"));
    assert_eq!(world.app.requests(), before, "the app saw none of them");
}

#[tokio::test]
async fn a_websocket_opened_with_the_cookie_is_closed_normally_when_its_session_ends() {
    let world = World::start().await;
    let token = world
        .issuer
        .demo_member()
        .expires_in(Duration::from_secs(3))
        .sign();
    let session = world.session(&token).await;
    let url = world.gateway.url("/live/ws").replacen("http", "ws", 1);
    let mut request = url.into_client_request().unwrap();
    let headers = request.headers_mut();
    headers.insert("cookie", session.parse().unwrap());
    headers.insert("origin", world.gateway.base.parse().unwrap());
    headers.insert("sec-fetch-site", "same-origin".parse().unwrap());
    let (mut socket, _) = tokio_tungstenite::connect_async(request).await.unwrap();
    let greeting = tokio::time::timeout(PATIENCE, socket.next()).await.unwrap();
    assert_eq!(
        greeting.unwrap().unwrap(),
        Message::text("user member-1"),
        "the upstream knows the user from the cookie"
    );
    socket.send(Message::text("hello")).await.unwrap();
    let echo = tokio::time::timeout(PATIENCE, socket.next()).await.unwrap();
    assert_eq!(echo.unwrap().unwrap(), Message::text("echo hello"));

    let closed = tokio::time::timeout(PATIENCE, async {
        loop {
            match socket.next().await {
                Some(Ok(Message::Close(frame))) => return frame,
                Some(Ok(_)) => continue,
                other => panic!("no close frame: {other:?}"),
            }
        }
    })
    .await
    .expect("closed when the session ends");
    let frame = closed.expect("a close code");
    assert_eq!(frame.code, CloseCode::Normal);
    assert_eq!(frame.reason, "session expired");
    assert!(
        now() >= world_expiry(&token),
        "not before the token expired"
    );

    // A WebSocket from another origin with the cookie never opens.
    let fresh = world.session(&world.issuer.demo_member().sign()).await;
    let mut request = world
        .gateway
        .url("/live/ws")
        .replacen("http", "ws", 1)
        .into_client_request()
        .unwrap();
    request
        .headers_mut()
        .insert("cookie", fresh.parse().unwrap());
    request
        .headers_mut()
        .insert("origin", "https://evil.example".parse().unwrap());
    let refused = tokio_tungstenite::connect_async(request).await;
    assert!(refused.is_err(), "a cross-site WebSocket opened");
    let _ = &world.live;
}

fn world_expiry(token: &str) -> i64 {
    use base64::Engine;
    let payload = token.split('.').nth(1).unwrap();
    let claims: Value = serde_json::from_slice(
        &base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(payload)
            .unwrap(),
    )
    .unwrap();
    claims["exp"].as_i64().unwrap()
}

#[tokio::test]
async fn an_embed_route_must_sign_users_in_and_its_options_need_embed() {
    let issuer = MockIssuer::start().await;
    let auth = auth_toml(&issuer);
    let public = Gateway::try_start(
        &format!(
            "{auth}[[route]]\nprefix = \"/\"\nupstream = \"http://127.0.0.1:1\"\nembed = true\npublic = true\n"
        ),
        &[],
    )
    .await
    .err()
    .expect("refused");
    assert_eq!(public.key(), "route[0].embed");
    let stray = Gateway::try_start(
        &format!("{auth}[[route]]\nprefix = \"/\"\nupstream = \"http://127.0.0.1:1\"\nembed_script = false\n"),
        &[],
    )
    .await
    .err()
    .expect("refused");
    assert_eq!(stray.key(), "route[0].embed_script");
}

//! Header-level rules of the reverse proxy: identity and token headers under
//! every spelling, `Host` as RFC 9112 §3.2 wants it, hop-by-hop headers of
//! responses.

use meingpt_auth::testing::MockIssuer;

use crate::common::raw;
use crate::common::{Gateway, Upstream, auth_toml, get};

async fn setup() -> (MockIssuer, Upstream, Gateway) {
    let issuer = MockIssuer::start().await;
    let upstream = Upstream::start().await;
    let toml = format!(
        "{}[[route]]\nprefix = \"/\"\nupstream = \"{url}\"\n\
         [[route]]\nprefix = \"/public\"\nupstream = \"{url}\"\npublic = true\n\
         [[route]]\nprefix = \"/mcp\"\nupstream = \"{url}\"\nforward_token = true\n",
        auth_toml(&issuer),
        url = upstream.url()
    );
    let gateway = Gateway::start(&toml, &[]).await;
    (issuer, upstream, gateway)
}

/// Identity and token headers spelled with `_` for `-`, as CGI, WSGI
/// (PEP 3333), PHP and Rails read them: `X_Auth_Request_User` becomes
/// `HTTP_X_AUTH_REQUEST_USER`, the same as `X-Auth-Request-User`.
const UNDERSCORED: [(&str, &str); 10] = [
    ("X_Auth_Request_User", "admin-1"),
    ("X_Auth_Request_Email", "boss@example.com"),
    ("X-Auth_Request-Preferred_Username", "The Boss"),
    ("x_auth_request_groups", "team-eng"),
    ("X_meinGPT_Org_Id", "other-org"),
    ("X_MEINGPT_ROLE", "admin"),
    ("X_meinGPT_Claims", "eyJyb2xlIjoiYWRtaW4ifQ"),
    ("X_meinGPT_JWT", "forged.token.value"),
    ("X_Forwarded_For", "203.0.113.66"),
    ("X-Forwarded_Host", "admin.example.com"),
];

/// Every header the upstream got whose name reads as `canonical` once `_`
/// is `-` and case is folded, but is spelled otherwise.
fn other_spellings(seen: &crate::common::Received, canonical: &str) -> Vec<String> {
    seen.headers
        .keys()
        .map(|name| name.as_str())
        .filter(|name| *name != canonical && name.replace('_', "-") == canonical)
        .map(str::to_owned)
        .collect()
}

const GUARDED: [&str; 10] = [
    "x-auth-request-user",
    "x-auth-request-email",
    "x-auth-request-preferred-username",
    "x-auth-request-groups",
    "x-meingpt-org-id",
    "x-meingpt-role",
    "x-meingpt-claims",
    "x-meingpt-jwt",
    "x-forwarded-for",
    "x-forwarded-host",
];

#[tokio::test]
async fn identity_and_token_headers_spelled_with_underscores_never_reach_the_upstream() {
    let (issuer, upstream, gateway) = setup().await;
    let token = issuer.token().sub("user-5").sign();
    let mut signed_in = UNDERSCORED.to_vec();
    signed_in.push(("x-meingpt-jwt", &token));

    // On a public route without a token, on a signed-in route, and on a
    // route that forwards the token.
    for (path, headers) in [
        ("/public/page", UNDERSCORED.to_vec()),
        ("/hello", signed_in.clone()),
        ("/mcp/call", signed_in.clone()),
    ] {
        let answer = get(&gateway.url(path), &headers).await;
        assert_eq!(answer.status, 200, "{path}: {}", answer.body);
        let seen = upstream.last();
        for name in GUARDED {
            assert_eq!(
                other_spellings(&seen, name),
                Vec::<String>::new(),
                "{path}: another spelling of {name} reached the upstream"
            );
        }
    }
    let seen = upstream.last();
    assert_eq!(seen.header("x-auth-request-user"), Some("user-5"));
    assert_eq!(seen.header("x-meingpt-jwt"), Some(token.as_str()));
}

#[tokio::test]
async fn other_headers_with_underscores_pass_unchanged() {
    let (_issuer, upstream, gateway) = setup().await;

    let answer = get(
        &gateway.url("/public/page"),
        &[("x_request_id", "r-1"), ("X_Auth_Request_Userx", "kept")],
    )
    .await;

    assert_eq!(answer.status, 200);
    let seen = upstream.last();
    assert_eq!(seen.header("x_request_id"), Some("r-1"));
    assert_eq!(seen.header("x_auth_request_userx"), Some("kept"));
}

#[tokio::test]
async fn http11_request_with_two_host_headers_gets_400() {
    let (_issuer, upstream, gateway) = setup().await;

    let status = raw::status(
        &gateway.base,
        "GET /public/page HTTP/1.1\r\nHost: app.example.com\r\nHost: admin.example.com\r\n\
         Connection: close\r\n\r\n",
    )
    .await;

    assert_eq!(status, 400);
    assert_eq!(upstream.count(), 0);
}

#[tokio::test]
async fn http11_request_without_host_gets_400() {
    let (_issuer, upstream, gateway) = setup().await;

    let status = raw::status(
        &gateway.base,
        "GET /public/page HTTP/1.1\r\nConnection: close\r\n\r\n",
    )
    .await;

    assert_eq!(status, 400);
    assert_eq!(upstream.count(), 0);
}

#[tokio::test]
async fn host_that_is_not_a_host_and_port_gets_400() {
    let (_issuer, upstream, gateway) = setup().await;

    for host in ["", "user@app.example.com", "a b", "app.example.com, admin"] {
        let status = raw::status(
            &gateway.base,
            &format!("GET /public/page HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n"),
        )
        .await;
        assert_eq!(status, 400, "Host: {host:?}");
    }
    assert_eq!(upstream.count(), 0);
}

#[tokio::test]
async fn one_host_header_and_http10_without_host_are_served() {
    let (_issuer, upstream, gateway) = setup().await;

    let with_host = raw::status(
        &gateway.base,
        "GET /public/page HTTP/1.1\r\nHost: app.example.com:8443\r\nConnection: close\r\n\r\n",
    )
    .await;
    let http10 = raw::status(&gateway.base, "GET /public/page HTTP/1.0\r\n\r\n").await;

    assert_eq!(with_host, 200);
    assert_eq!(http10, 200);
    assert_eq!(upstream.count(), 2);
}

#[tokio::test]
async fn hop_by_hop_headers_of_the_upstream_answer_never_reach_the_client() {
    let (issuer, _upstream, gateway) = setup().await;
    let token = issuer.token().sign();

    let answer = get(&gateway.url("/hop-by-hop"), &[("x-meingpt-jwt", &token)]).await;

    assert_eq!(answer.status, 200, "{}", answer.body);
    assert_eq!(answer.body, "hops\n");
    for name in [
        "x-private-hop",
        "keep-alive",
        "proxy-authenticate",
        "upgrade",
        "trailer",
    ] {
        assert_eq!(answer.header(name), None, "{name} reached the client");
    }
    assert!(
        !answer
            .headers
            .get_all("connection")
            .iter()
            .any(|value| value.to_str().unwrap().contains("x-private-hop")),
        "{:?}",
        answer.headers
    );
    assert_eq!(answer.header("x-end-to-end"), Some("kept"));
}

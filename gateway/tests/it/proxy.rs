//! Reverse proxy: policies, identity headers, spoofed headers, the token,
//! hop-by-hop and forwarded headers, routing.

use meingpt_auth::testing::MockIssuer;

use crate::common::{
    Gateway, PATHS_READ_AS_ANOTHER_ROUTE, Upstream, auth_toml, get, get_as_written, get_raw,
    payload_of,
};

async fn setup(routes: &str) -> (MockIssuer, Upstream, Gateway) {
    setup_with("", routes).await
}

/// `settings` (top-level keys) before the `[auth]` table and `routes`.
async fn setup_with(settings: &str, routes: &str) -> (MockIssuer, Upstream, Gateway) {
    let issuer = MockIssuer::start().await;
    let upstream = Upstream::start().await;
    let toml = format!(
        "{settings}{}{}",
        auth_toml(&issuer),
        routes.replace("UPSTREAM", &upstream.url())
    );
    let gateway = Gateway::start(&toml, &[]).await;
    (issuer, upstream, gateway)
}

const ROUTES: &str = r#"
[[route]]
prefix = "/"
upstream = "UPSTREAM"

[[route]]
prefix = "/admin"
upstream = "UPSTREAM"
roles = ["admin"]

[[route]]
prefix = "/eng"
upstream = "UPSTREAM"
team_ids = ["team-eng"]
team_names = ["Engineering"]

[[route]]
prefix = "/public"
upstream = "UPSTREAM"
public = true

[[route]]
prefix = "/mcp"
upstream = "UPSTREAM"
forward_token = true

[[route]]
prefix = "/strip"
upstream = "UPSTREAM"
strip_prefix = true

[[route]]
prefix = "/app"
upstream = "UPSTREAM"
frame_ancestors = ["https://app.meingpt.com"]
"#;

#[tokio::test]
async fn signed_in_user_reaches_the_upstream_with_identity_headers() {
    let (issuer, upstream, gateway) = setup(ROUTES).await;
    let token = issuer
        .token()
        .sub("user-7")
        .email("jurgen@example.com")
        .username("Jürgen Groß")
        .role("member")
        .team("team-a", "A")
        .team("team-b", "B")
        .sign();

    let answer = get(&gateway.url("/hello"), &[("x-meingpt-jwt", &token)]).await;

    assert_eq!(answer.status, 200, "{}", answer.body);
    let seen = upstream.last();
    assert_eq!(seen.header("x-auth-request-user"), Some("user-7"));
    assert_eq!(
        seen.header("x-auth-request-email"),
        Some("jurgen@example.com")
    );
    assert_eq!(
        seen.header("x-auth-request-preferred-username"),
        Some("J%C3%BCrgen Gro%C3%9F")
    );
    assert_eq!(seen.header("x-auth-request-groups"), Some("team-a,team-b"));
    assert_eq!(seen.header("x-meingpt-org-id"), Some(issuer.organization()));
    assert_eq!(seen.header("x-meingpt-role"), Some("member"));
    assert_eq!(seen.header("x-meingpt-claims"), Some(payload_of(&token)));
}

#[tokio::test]
async fn request_without_token_gets_401_and_never_reaches_the_upstream() {
    let (_issuer, upstream, gateway) = setup(ROUTES).await;

    let answer = get(&gateway.url("/hello"), &[]).await;

    assert_eq!(answer.status, 401);
    assert_eq!(
        answer.header("www-authenticate"),
        Some("Bearer realm=\"meingpt\"")
    );
    assert_eq!(upstream.count(), 0);
}

#[tokio::test]
async fn bad_token_gets_401_invalid_token() {
    let (issuer, upstream, gateway) = setup(ROUTES).await;
    let expired = issuer.token().expires_at(1_000_000).sign();

    let answer = get(
        &gateway.url("/hello"),
        &[("authorization", &format!("Bearer {expired}"))],
    )
    .await;

    assert_eq!(answer.status, 401);
    assert!(
        answer
            .header("www-authenticate")
            .unwrap()
            .contains("error=\"invalid_token\"")
    );
    assert_eq!(upstream.count(), 0);
}

#[tokio::test]
async fn member_on_an_admin_route_gets_403_insufficient_scope() {
    let (issuer, upstream, gateway) = setup(ROUTES).await;
    let member = issuer.demo_member().sign();
    let admin = issuer.demo_admin().sign();

    let refused = get(&gateway.url("/admin/users"), &[("x-meingpt-jwt", &member)]).await;
    assert_eq!(refused.status, 403);
    assert!(
        refused
            .header("www-authenticate")
            .unwrap()
            .contains("error=\"insufficient_scope\"")
    );
    assert_eq!(refused.json()["error"], "insufficient_scope");
    assert_eq!(upstream.count(), 0);

    let allowed = get(&gateway.url("/admin/users"), &[("x-meingpt-jwt", &admin)]).await;
    assert_eq!(allowed.status, 200);
    assert_eq!(upstream.last().uri, "/admin/users");
}

#[tokio::test]
async fn team_id_and_team_name_requirements_must_both_hold() {
    let (issuer, upstream, gateway) = setup(ROUTES).await;
    let both = issuer.token().team("team-eng", "Engineering").sign();
    let id_only = issuer.token().team("team-eng", "Renamed").sign();
    let name_only = issuer.token().team("team-other", "Engineering").sign();

    assert_eq!(
        get(&gateway.url("/eng"), &[("x-meingpt-jwt", &both)])
            .await
            .status,
        200
    );
    assert_eq!(
        get(&gateway.url("/eng"), &[("x-meingpt-jwt", &id_only)])
            .await
            .status,
        403
    );
    assert_eq!(
        get(&gateway.url("/eng"), &[("x-meingpt-jwt", &name_only)])
            .await
            .status,
        403
    );
    assert_eq!(upstream.count(), 1);
}

const SPOOFED: [(&str, &str); 7] = [
    ("x-auth-request-user", "admin-1"),
    ("x-auth-request-email", "boss@example.com"),
    ("x-auth-request-preferred-username", "The Boss"),
    ("x-auth-request-groups", "team-eng"),
    ("x-meingpt-org-id", "other-org"),
    ("x-meingpt-role", "admin"),
    ("x-meingpt-claims", "eyJyb2xlIjoiYWRtaW4ifQ"),
];

#[tokio::test]
async fn client_sent_identity_headers_are_replaced_by_the_verified_ones() {
    let (issuer, upstream, gateway) = setup(ROUTES).await;
    let token = issuer
        .token()
        .sub("user-9")
        .without("email")
        .without("username")
        .sign();
    let mut headers = SPOOFED.to_vec();
    headers.push(("x-meingpt-jwt", &token));

    let answer = get(&gateway.url("/hello"), &headers).await;

    assert_eq!(answer.status, 200);
    let seen = upstream.last();
    assert_eq!(seen.header("x-auth-request-user"), Some("user-9"));
    assert_eq!(seen.header("x-meingpt-role"), Some("member"));
    assert_eq!(seen.header("x-meingpt-org-id"), Some(issuer.organization()));
    assert_eq!(seen.header("x-meingpt-claims"), Some(payload_of(&token)));
    // Absent from the token, so absent upstream: the client's copies are gone.
    assert_eq!(seen.header("x-auth-request-email"), None);
    assert_eq!(seen.header("x-auth-request-preferred-username"), None);
    assert_eq!(seen.header("x-auth-request-groups"), None);
    for (name, _) in SPOOFED {
        assert!(
            seen.headers.get_all(name).iter().count() <= 1,
            "{name} repeated"
        );
    }
}

#[tokio::test]
async fn client_sent_identity_headers_are_removed_on_public_routes() {
    let (_issuer, upstream, gateway) = setup(ROUTES).await;

    let answer = get(&gateway.url("/public/page"), &SPOOFED).await;

    assert_eq!(answer.status, 200);
    let seen = upstream.last();
    for (name, _) in SPOOFED {
        assert_eq!(seen.header(name), None, "{name} reached the upstream");
    }
}

#[tokio::test]
async fn token_is_not_forwarded_unless_the_route_asks() {
    let (issuer, upstream, gateway) = setup(ROUTES).await;
    let token = issuer.token().sign();
    let bearer = format!("Bearer {token}");

    let cases = [
        ("/hello", "x-meingpt-jwt", token.as_str(), None),
        ("/hello", "authorization", bearer.as_str(), None),
        (
            "/mcp",
            "x-meingpt-jwt",
            token.as_str(),
            Some(token.as_str()),
        ),
        (
            "/mcp",
            "authorization",
            bearer.as_str(),
            Some(bearer.as_str()),
        ),
    ];
    for (n, (path, name, value, forwarded)) in cases.into_iter().enumerate() {
        let answer = get(&gateway.url(path), &[(name, value)]).await;
        assert_eq!(answer.status, 200, "{path} with {name}: {}", answer.body);
        assert_eq!(
            upstream.count(),
            n + 1,
            "{path} with {name} reached the upstream"
        );
        let seen = upstream.last();
        assert_eq!(seen.header("x-auth-request-user"), Some("user-1"), "{path}");
        assert_eq!(seen.header(name), forwarded, "{path} with {name}");
    }
}

#[tokio::test]
async fn hop_by_hop_headers_are_removed_and_forwarded_headers_set() {
    let (issuer, upstream, gateway) = setup(ROUTES).await;
    let token = issuer.token().sign();

    let answer = get(
        &gateway.url("/hello"),
        &[
            ("x-meingpt-jwt", &token),
            ("connection", "x-private-hop"),
            ("x-private-hop", "1"),
            ("proxy-authorization", "Basic Zm9vOmJhcg=="),
            ("x-forwarded-for", "203.0.113.9"),
            ("x-forwarded-proto", "https"),
            ("x-kept", "yes"),
        ],
    )
    .await;

    assert_eq!(answer.status, 200);
    let seen = upstream.last();
    assert_eq!(seen.header("x-private-hop"), None);
    assert_eq!(seen.header("proxy-authorization"), None);
    assert_eq!(seen.header("x-kept"), Some("yes"));
    // The peer (loopback) is a trusted proxy by default: its forwarding
    // headers are kept and it is appended.
    assert_eq!(
        seen.header("x-forwarded-for"),
        Some("203.0.113.9, 127.0.0.1")
    );
    assert_eq!(seen.header("x-forwarded-proto"), Some("https"));
    let gateway_host = gateway.base.trim_start_matches("http://");
    assert_eq!(seen.header("x-forwarded-host"), Some(gateway_host));
    assert_eq!(
        seen.header("host"),
        Some(upstream.addr.to_string().as_str())
    );
}

#[tokio::test]
async fn strip_prefix_removes_the_prefix_and_keeps_the_query() {
    let (issuer, upstream, gateway) = setup(ROUTES).await;
    let token = issuer.token().sign();

    get(
        &gateway.url("/strip/a/b?x=1&y=2"),
        &[("x-meingpt-jwt", &token)],
    )
    .await;
    assert_eq!(upstream.last().uri, "/a/b?x=1&y=2");
    get(&gateway.url("/strip"), &[("x-meingpt-jwt", &token)]).await;
    assert_eq!(upstream.last().uri, "/");
    get(&gateway.url("/hello/x?q=1"), &[("x-meingpt-jwt", &token)]).await;
    assert_eq!(upstream.last().uri, "/hello/x?q=1");
}

#[tokio::test]
async fn prefixes_match_whole_segments() {
    let (issuer, upstream, gateway) = setup(ROUTES).await;
    let member = issuer.demo_member().sign();

    // `/administrator` is not under `/admin`: the `/` route (any user) takes it.
    let answer = get(
        &gateway.url("/administrator"),
        &[("x-meingpt-jwt", &member)],
    )
    .await;
    assert_eq!(answer.status, 200);
    assert_eq!(upstream.last().uri, "/administrator");
}

#[tokio::test]
async fn paths_with_dot_segments_are_refused_before_any_route() {
    let (issuer, upstream, gateway) = setup(ROUTES).await;
    let member = issuer.demo_member().sign();

    for path in [
        "/public/../admin",
        "/public/%2e%2e/admin",
        "/public/..%2fadmin",
        "/public/%252e%252e/admin",
    ] {
        let status = get_raw(&gateway.url(path), &[("x-meingpt-jwt", &member)]).await;
        assert_eq!(status, 400, "{path}");
    }
    assert_eq!(upstream.count(), 0);
}

#[tokio::test]
async fn path_without_a_route_gets_404() {
    let (issuer, upstream, gateway) =
        setup("[[route]]\nprefix = \"/only\"\nupstream = \"UPSTREAM\"\n").await;
    let token = issuer.token().sign();

    let answer = get(&gateway.url("/elsewhere"), &[("x-meingpt-jwt", &token)]).await;

    assert_eq!(answer.status, 404);
    assert_eq!(upstream.count(), 0);
}

#[tokio::test]
async fn frame_ancestors_route_answers_with_the_policy() {
    let (issuer, _upstream, gateway) = setup(ROUTES).await;
    let token = issuer.token().sign();

    let framed = get(&gateway.url("/app"), &[("x-meingpt-jwt", &token)]).await;
    assert_eq!(
        framed.header("content-security-policy"),
        Some("frame-ancestors https://app.meingpt.com")
    );
    let plain = get(&gateway.url("/hello"), &[("x-meingpt-jwt", &token)]).await;
    assert_eq!(plain.header("content-security-policy"), None);
}

#[tokio::test]
async fn request_bodies_are_forwarded() {
    let (issuer, upstream, gateway) = setup(ROUTES).await;
    let token = issuer.token().sign();

    let response = crate::common::client()
        .post(gateway.url("/upload"))
        .header("x-meingpt-jwt", &token)
        .body(vec![b'x'; 100_000])
        .send()
        .await
        .unwrap();
    let answer = crate::common::Answer::read(response).await;

    assert_eq!(answer.status, 200);
    assert_eq!(answer.json()["body_len"], 100_000);
    assert_eq!(upstream.last().method, "POST");
}

#[tokio::test]
async fn percent_encoded_paths_get_the_policy_of_what_they_decode_to() {
    let (issuer, upstream, gateway) = setup(ROUTES).await;
    let member = issuer.demo_member().sign();

    // An upstream that decodes these serves /admin/…: the admin policy applies.
    for path in ["/admin%2Fusers", "/%61dmin/users", "/admin%2fusers"] {
        let status = get_raw(&gateway.url(path), &[("x-meingpt-jwt", &member)]).await;
        assert_eq!(status, 403, "{path}");
    }
    assert_eq!(upstream.count(), 0);
}

#[tokio::test]
async fn paths_other_servers_would_route_elsewhere_are_refused() {
    let (issuer, upstream, gateway) = setup(ROUTES).await;
    let member = issuer.demo_member().sign();

    // A servlet container drops `;…` and some servers ignore case: both
    // would serve /admin/… to a request the `/` route admitted.
    for path in ["/admin;jsessionid=x/users", "/ADMIN/users", "/Admin"] {
        let status = get_raw(&gateway.url(path), &[("x-meingpt-jwt", &member)]).await;
        assert_eq!(status, 400, "{path}");
    }
    assert_eq!(upstream.count(), 0);
    let status = get_raw(&gateway.url("/Hello/World"), &[("x-meingpt-jwt", &member)]).await;
    assert_eq!(status, 200);
}

#[tokio::test]
async fn paths_an_upstream_could_read_as_another_route_are_refused() {
    let (issuer, upstream, gateway) = setup(ROUTES).await;
    let member = issuer.demo_member().sign();

    let mut not_refused = Vec::new();
    for spelling in PATHS_READ_AS_ANOTHER_ROUTE {
        let path = spelling.replace("{public}", "/public");
        let status = get_as_written(&gateway.base, &path, &[("x-meingpt-jwt", &member)]).await;
        if status != 400 {
            not_refused.push(format!("{path} -> {status}"));
        }
    }
    assert!(not_refused.is_empty(), "not refused: {not_refused:#?}");
    assert_eq!(
        upstream.count(),
        0,
        "a refused request reached the upstream"
    );
    // The same requests spelled plainly are served.
    let status = get_as_written(&gateway.base, "/public/x", &[]).await;
    assert_eq!(status, 200);
}

#[tokio::test]
async fn a_route_that_allows_unusual_path_characters_passes_them_as_sent() {
    let routes = "[[route]]\nprefix = \"/\"\nupstream = \"UPSTREAM\"\nroles = [\"admin\"]\n\
                  [[route]]\nprefix = \"/files\"\nupstream = \"UPSTREAM\"\n\
                  allow_unusual_path_characters = true\n";
    let (issuer, upstream, gateway) = setup(routes).await;
    let member = issuer.demo_member().sign();
    let token = [("x-meingpt-jwt", member.as_str())];

    for path in ["/files/a%5Cb", "/files/100%2525", "/files/tab%09name"] {
        let status = get_as_written(&gateway.base, path, &token).await;
        assert_eq!(status, 200, "{path}");
        assert_eq!(upstream.last().uri, path);
    }
    // Dot and empty segments stay refused, also once decoded twice, and so
    // does a spelling that would leave the route.
    for path in [
        "/files/..;/x",
        "/files//x",
        "/files/%252e%252e/x",
        "/%5Cfiles",
    ] {
        let status = get_as_written(&gateway.base, path, &token).await;
        assert_eq!(status, 400, "{path}");
    }
    assert_eq!(upstream.count(), 3);
}

#[tokio::test]
async fn forwarding_headers_from_a_peer_outside_trusted_proxies_are_replaced_or_removed() {
    let (issuer, upstream, gateway) = setup_with("trusted_proxies = []\n", ROUTES).await;
    let token = issuer.token().sign();

    let answer = get(
        &gateway.url("/hello"),
        &[
            ("x-meingpt-jwt", &token),
            (
                "forwarded",
                "for=203.0.113.9;proto=https;host=admin.example.com",
            ),
            ("x-real-ip", "203.0.113.9"),
            ("x-forwarded-port", "443"),
            ("x-forwarded-prefix", "/admin"),
            ("x-forwarded-for", "203.0.113.9"),
            ("x-forwarded-proto", "https"),
            ("x-forwarded-host", "admin.example.com"),
        ],
    )
    .await;

    assert_eq!(answer.status, 200);
    let seen = upstream.last();
    for name in [
        "forwarded",
        "x-real-ip",
        "x-forwarded-port",
        "x-forwarded-prefix",
    ] {
        assert_eq!(seen.header(name), None, "{name} reached the upstream");
    }
    assert_eq!(seen.header("x-forwarded-for"), Some("127.0.0.1"));
    assert_eq!(seen.header("x-forwarded-proto"), Some("http"));
    let gateway_host = gateway.base.trim_start_matches("http://");
    assert_eq!(seen.header("x-forwarded-host"), Some(gateway_host));
}

#[tokio::test]
async fn forwarding_headers_from_a_trusted_proxy_reach_the_upstream() {
    let (issuer, upstream, gateway) = setup(ROUTES).await;
    let token = issuer.token().sign();

    let answer = get(
        &gateway.url("/hello"),
        &[
            ("x-meingpt-jwt", &token),
            ("forwarded", "for=203.0.113.9"),
            ("x-real-ip", "203.0.113.9"),
            ("x-forwarded-port", "443"),
            ("x-forwarded-host", "app.example.com"),
        ],
    )
    .await;

    assert_eq!(answer.status, 200);
    let seen = upstream.last();
    assert_eq!(seen.header("forwarded"), Some("for=203.0.113.9"));
    assert_eq!(seen.header("x-real-ip"), Some("203.0.113.9"));
    assert_eq!(seen.header("x-forwarded-port"), Some("443"));
    assert_eq!(seen.header("x-forwarded-host"), Some("app.example.com"));
    assert_eq!(seen.header("x-forwarded-for"), Some("127.0.0.1"));
}

#[tokio::test]
async fn client_sent_original_uri_headers_never_reach_the_upstream() {
    let (issuer, upstream, gateway) = setup(ROUTES).await;
    let token = issuer.token().sign();

    // An app that honours X-Original-URL (IIS, Symfony) would serve /admin.
    let answer = get(
        &gateway.url("/hello"),
        &[
            ("x-meingpt-jwt", &token),
            ("x-original-url", "/admin/users"),
            ("x-rewrite-url", "/admin/users"),
            ("x-original-uri", "/admin/users"),
            ("x_original_url", "/admin/users"),
            ("x-forwarded-uri", "/admin/users"),
            ("x-original-method", "DELETE"),
        ],
    )
    .await;

    assert_eq!(answer.status, 200);
    let seen = upstream.last();
    for name in [
        "x-original-url",
        "x-rewrite-url",
        "x-original-uri",
        "x_original_url",
        "x-forwarded-uri",
        "x-original-method",
    ] {
        assert_eq!(seen.header(name), None, "{name} reached the upstream");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_binary_refuses_a_percent_encoded_strip_prefix_with_400() {
    let issuer = MockIssuer::start().await;
    let upstream = Upstream::start().await;
    let config = crate::common::temp_dir("strip").join("gateway.toml");
    std::fs::write(
        &config,
        format!(
            "{}[[route]]\nprefix = \"/api\"\nupstream = \"{}\"\nstrip_prefix = true\n",
            auth_toml(&issuer),
            upstream.url()
        ),
    )
    .unwrap();
    let (_running, base) = crate::common::binary::Running::start(
        &["--config", config.to_str().unwrap()],
        &[("LISTEN_ADDR", "127.0.0.1:0")],
    );
    let token = issuer.token().sign();

    // `/%61pi/x` is `/api/x` to an upstream that decodes it; stripping the
    // prefix from the spelling sent is impossible, guessing is refused.
    let encoded = get_raw(&format!("{base}/%61pi/x"), &[("x-meingpt-jwt", &token)]).await;
    let plain = get_raw(&format!("{base}/api/x"), &[("x-meingpt-jwt", &token)]).await;

    assert_eq!(encoded, 400);
    assert_eq!(plain, 200);
    assert_eq!(upstream.count(), 1);
    assert_eq!(upstream.last().uri, "/x");
}

//! Forward auth: the reserved endpoint nginx, Caddy, Traefik and Envoy ask.

use meingpt_auth::testing::MockIssuer;

use crate::common::{
    Gateway, PATHS_READ_AS_ANOTHER_ROUTE, Upstream, auth_toml, get, get_as_written, get_raw,
    payload_of,
};

async fn setup() -> (MockIssuer, Upstream, Gateway) {
    setup_with("").await
}

/// The `/admin` (admins) and `/open` (public) routes, after `settings`
/// (top-level keys and tables).
async fn setup_with(settings: &str) -> (MockIssuer, Upstream, Gateway) {
    let issuer = MockIssuer::start().await;
    let upstream = Upstream::start().await;
    let toml = format!(
        "{settings}{}[[route]]\nprefix = \"/admin\"\nupstream = \"{url}\"\nroles = [\"admin\"]\n\
         [[route]]\nprefix = \"/open\"\nupstream = \"{url}\"\npublic = true\n",
        auth_toml(&issuer),
        url = upstream.url()
    );
    let gateway = Gateway::start(&toml, &[]).await;
    (issuer, upstream, gateway)
}

#[tokio::test]
async fn forward_auth_answers_200_with_the_identity_headers() {
    let (issuer, upstream, gateway) = setup().await;
    let token = issuer.demo_admin().sign();

    let answer = get(
        &gateway.url("/_meingpt/auth"),
        &[
            ("x-meingpt-jwt", &token),
            ("x-original-uri", "/anything?q=1"),
        ],
    )
    .await;

    assert_eq!(answer.status, 200);
    assert_eq!(answer.body, "");
    assert_eq!(answer.header("x-auth-request-user"), Some("admin-1"));
    assert_eq!(
        answer.header("x-auth-request-email"),
        Some("ada@example.com")
    );
    assert_eq!(
        answer.header("x-auth-request-preferred-username"),
        Some("Ada Admin")
    );
    assert_eq!(answer.header("x-auth-request-groups"), Some("team-eng"));
    assert_eq!(
        answer.header("x-meingpt-org-id"),
        Some(issuer.organization())
    );
    assert_eq!(answer.header("x-meingpt-role"), Some("admin"));
    assert_eq!(answer.header("x-meingpt-claims"), Some(payload_of(&token)));
    assert_eq!(upstream.count(), 0);
}

#[tokio::test]
async fn forward_auth_without_a_token_answers_401_with_a_challenge() {
    let (_issuer, _upstream, gateway) = setup().await;

    let answer = get(&gateway.url("/_meingpt/auth"), &[("x-original-uri", "/")]).await;

    assert_eq!(answer.status, 401);
    assert_eq!(
        answer.header("www-authenticate"),
        Some("Bearer realm=\"meingpt\"")
    );
    assert_eq!(answer.header("x-auth-request-user"), None);
}

#[tokio::test]
async fn forward_auth_refuses_a_grpc_call_with_an_http_status_a_proxy_does_not_pass() {
    // A proxy lets the request through on any 2xx; the gRPC shape of a
    // refusal (`200` with `grpc-status`) would let it pass.
    let (issuer, _upstream, gateway) = setup().await;
    let member = issuer.demo_member().sign();
    let grpc = ("content-type", "application/grpc");

    let anonymous = get(
        &gateway.url("/_meingpt/auth"),
        &[grpc, ("x-original-uri", "/x")],
    )
    .await;
    let member = get(
        &gateway.url("/_meingpt/auth"),
        &[
            grpc,
            ("x-original-uri", "/admin/x"),
            ("x-meingpt-jwt", &member),
        ],
    )
    .await;

    assert_eq!(anonymous.status, 401);
    assert_eq!(anonymous.header("grpc-status"), None);
    assert_eq!(member.status, 403);
    assert_eq!(member.header("grpc-status"), None);
    assert_eq!(member.header("x-auth-request-user"), None);
}

#[tokio::test]
async fn forward_auth_with_a_bad_token_answers_401_invalid_token() {
    let (issuer, _upstream, gateway) = setup().await;
    let other = MockIssuer::start().await;
    let forged = other.token().issuer(issuer.issuer()).sign();

    let answer = get(
        &gateway.url("/_meingpt/auth"),
        &[("x-meingpt-jwt", &forged), ("x-original-uri", "/")],
    )
    .await;

    assert_eq!(answer.status, 401);
    assert!(
        answer
            .header("www-authenticate")
            .unwrap()
            .contains("invalid_token")
    );
    assert_eq!(answer.json()["error"], "invalid_token");
}

#[tokio::test]
async fn forward_auth_applies_the_policy_of_the_original_uri() {
    let (issuer, _upstream, gateway) = setup().await;
    let member = issuer.demo_member().sign();
    let admin = issuer.demo_admin().sign();
    let url = gateway.url("/_meingpt/auth");

    let refused = get(
        &url,
        &[
            ("x-meingpt-jwt", &member),
            ("x-original-uri", "/admin/x?y=1"),
        ],
    )
    .await;
    assert_eq!(refused.status, 403);
    assert!(
        refused
            .header("www-authenticate")
            .unwrap()
            .contains("insufficient_scope")
    );
    assert_eq!(refused.header("x-auth-request-user"), None);

    let allowed = get(
        &url,
        &[("x-meingpt-jwt", &admin), ("x-original-uri", "/admin/x")],
    )
    .await;
    assert_eq!(allowed.status, 200);

    // Another path: any signed-in user.
    let elsewhere = get(
        &url,
        &[("x-meingpt-jwt", &member), ("x-original-uri", "/other")],
    )
    .await;
    assert_eq!(elsewhere.status, 200);
    assert_eq!(elsewhere.header("x-auth-request-user"), Some("member-1"));
}

#[tokio::test]
async fn forward_auth_for_a_public_route_answers_200_without_identity() {
    let (issuer, _upstream, gateway) = setup().await;
    let token = issuer.demo_admin().sign();

    let answer = get(
        &gateway.url("/_meingpt/auth"),
        &[("x-meingpt-jwt", &token), ("x-original-uri", "/open/page")],
    )
    .await;

    assert_eq!(answer.status, 200);
    assert_eq!(answer.header("x-auth-request-user"), None);
}

#[tokio::test]
async fn forward_auth_refuses_an_original_uri_with_dot_segments() {
    let (issuer, _upstream, gateway) = setup().await;
    let admin = issuer.demo_admin().sign();

    // A public prefix followed by `..` must not lend its policy to /admin.
    let answer = get(
        &gateway.url("/_meingpt/auth"),
        &[
            ("x-meingpt-jwt", &admin),
            ("x-original-uri", "/open/../admin"),
        ],
    )
    .await;

    assert_eq!(answer.status, 400);
}

#[tokio::test]
async fn forward_auth_reads_the_original_path_after_the_endpoint() {
    let (issuer, _upstream, gateway) = setup().await;
    let member = issuer.demo_member().sign();

    // Envoy's ext_authz appends the original path to the service's path prefix.
    let refused = get_raw(
        &gateway.url("/_meingpt/auth/admin/users"),
        &[("x-meingpt-jwt", &member)],
    )
    .await;
    let allowed = get_raw(
        &gateway.url("/_meingpt/auth/other"),
        &[("x-meingpt-jwt", &member)],
    )
    .await;

    assert_eq!(refused, 403);
    assert_eq!(allowed, 200);
}

#[tokio::test]
async fn forward_auth_matches_the_decoded_original_uri() {
    let (issuer, _upstream, gateway) = setup().await;
    let member = issuer.demo_member().sign();

    for uri in ["/admin%2Fusers", "/%61dmin"] {
        let answer = get(
            &gateway.url("/_meingpt/auth"),
            &[("x-meingpt-jwt", &member), ("x-original-uri", uri)],
        )
        .await;
        assert_eq!(answer.status, 403, "{uri}");
    }
}

#[tokio::test]
async fn a_client_copy_of_another_original_uri_spelling_cannot_pick_the_policy() {
    let (issuer, _upstream, gateway) = setup().await;
    let member = issuer.demo_member().sign();
    let url = gateway.url("/_meingpt/auth");

    // Behind Caddy (which sets X-Forwarded-Uri and passes the client's
    // headers on), a client adds X-Original-URI naming a public route.
    let spoofed = get(
        &url,
        &[
            ("x-original-uri", "/open/x"),
            ("x-forwarded-uri", "/admin/x"),
        ],
    )
    .await;
    assert_eq!(spoofed.status, 400, "{}", spoofed.body);
    assert_eq!(spoofed.header("x-auth-request-user"), None);

    // Any other spelling that disagrees, under any name a server may read.
    for other in [
        "x-forwarded-uri",
        "x-original-url",
        "x-rewrite-url",
        "x_original_uri",
        "x_forwarded_uri",
    ] {
        let answer = get(
            &url,
            &[
                ("x-meingpt-jwt", &member),
                ("x-original-uri", "/open/x"),
                (other, "/admin/x"),
            ],
        )
        .await;
        assert_eq!(answer.status, 400, "{other}");
    }
    let methods = get(
        &url,
        &[
            ("x-meingpt-jwt", &member),
            ("x-original-uri", "/x"),
            ("x-original-method", "GET"),
            ("x-forwarded-method", "DELETE"),
        ],
    )
    .await;
    assert_eq!(methods.status, 400);

    // The same request under two names is no conflict.
    let agreeing = get(
        &url,
        &[
            ("x-meingpt-jwt", &member),
            ("x-original-uri", "/admin/x?y=1"),
            ("x-original-url", "https://app.example.com/admin/x?y=1"),
        ],
    )
    .await;
    assert_eq!(agreeing.status, 403);
}

#[tokio::test]
async fn a_repeated_original_uri_header_is_refused() {
    let (issuer, _upstream, gateway) = setup().await;
    let member = issuer.demo_member().sign();

    let answer = get(
        &gateway.url("/_meingpt/auth"),
        &[
            ("x-meingpt-jwt", &member),
            ("x-original-uri", "/open/x"),
            ("x-original-uri", "/admin/x"),
        ],
    )
    .await;

    assert_eq!(answer.status, 400, "{}", answer.body);
    assert_eq!(answer.header("x-auth-request-user"), None);
}

#[tokio::test]
async fn forward_auth_reads_x_forwarded_uri_when_configured_for_caddy_and_traefik() {
    let (issuer, _upstream, gateway) = setup_with(
        "[forward_auth]\nuri_header = \"X-Forwarded-Uri\"\nmethod_header = \"X-Forwarded-Method\"\n",
    )
    .await;
    let member = issuer.demo_member().sign();
    let url = gateway.url("/_meingpt/auth");

    let refused = get(
        &url,
        &[
            ("x-meingpt-jwt", &member),
            ("x-forwarded-uri", "/admin/x"),
            ("x-forwarded-method", "POST"),
        ],
    )
    .await;
    assert_eq!(refused.status, 403);
    let public = get(&url, &[("x-forwarded-uri", "/open/x")]).await;
    assert_eq!(public.status, 200);

    // The client's X-Original-URI no longer counts, and disagrees.
    let spoofed = get(
        &url,
        &[
            ("x-forwarded-uri", "/admin/x"),
            ("x-original-uri", "/open/x"),
        ],
    )
    .await;
    assert_eq!(spoofed.status, 400);
}

#[tokio::test]
async fn the_original_uri_is_origin_form_unless_it_starts_with_a_scheme() {
    let (issuer, _upstream, gateway) = setup().await;
    let member = issuer.demo_member().sign();
    let url = gateway.url("/_meingpt/auth");

    // `://` inside a path is part of the path, not a scheme: not the /open
    // policy, and refused for its empty segment.
    let inside = get(&url, &[("x-original-uri", "/admin/x://y/open")]).await;
    assert_eq!(inside.status, 400, "{}", inside.body);
    assert_eq!(inside.body, "bad request: the path has an empty segment\n");
    let in_query = get(
        &url,
        &[
            ("x-meingpt-jwt", &member),
            ("x-original-uri", "/admin/x?next=https://y/open"),
        ],
    )
    .await;
    assert_eq!(in_query.status, 403);

    // An absolute-form target (nginx's $request_uri when the client sent one).
    let absolute = get(
        &url,
        &[
            ("x-meingpt-jwt", &member),
            ("x-original-uri", "http://app.example.com/admin/x"),
        ],
    )
    .await;
    assert_eq!(absolute.status, 403);
    let public = get(
        &url,
        &[("x-original-uri", "https://app.example.com/open/x?a")],
    )
    .await;
    assert_eq!(public.status, 200);

    for malformed in ["x://y/open", "open/x", "ftp://h/open"] {
        let answer = get(&url, &[("x-original-uri", malformed)]).await;
        assert_eq!(answer.status, 400, "{malformed}");
    }
}

#[tokio::test]
async fn forward_auth_refuses_original_uris_an_upstream_would_read_as_another_route() {
    let (issuer, _upstream, gateway) = setup().await;
    let member = issuer.demo_member().sign();

    let mut not_refused = Vec::new();
    for spelling in PATHS_READ_AS_ANOTHER_ROUTE {
        let path = spelling.replace("{public}", "/open");
        // In the header (nginx, Caddy, Traefik)...
        let status = get_as_written(
            &gateway.base,
            "/_meingpt/auth",
            &[("x-meingpt-jwt", &member), ("x-original-uri", &path)],
        )
        .await;
        if status != 400 {
            not_refused.push(format!("X-Original-URI: {path} -> {status}"));
        }
        // ...and after the endpoint (Envoy).
        let status = get_as_written(
            &gateway.base,
            &format!("/_meingpt/auth{path}"),
            &[("x-meingpt-jwt", &member)],
        )
        .await;
        if status != 400 {
            not_refused.push(format!("/_meingpt/auth{path} -> {status}"));
        }
    }
    assert!(not_refused.is_empty(), "not refused: {not_refused:#?}");
}

#[tokio::test]
async fn an_envoy_path_that_disagrees_with_the_original_uri_header_is_refused() {
    let (issuer, _upstream, gateway) = setup().await;
    let member = issuer.demo_member().sign();

    let disagreeing = get_raw(
        &gateway.url("/_meingpt/auth/admin/users"),
        &[("x-meingpt-jwt", &member), ("x-original-uri", "/open/x")],
    )
    .await;
    let agreeing = get_raw(
        &gateway.url("/_meingpt/auth/admin/users"),
        &[
            ("x-meingpt-jwt", &member),
            ("x-original-uri", "/admin/users?x=1"),
        ],
    )
    .await;

    assert_eq!(disagreeing, 400);
    assert_eq!(agreeing, 403);
}

#[tokio::test]
async fn forward_auth_without_the_original_uri_is_refused_when_routes_need_it() {
    let (issuer, _upstream, gateway) = setup().await;
    let member = issuer.demo_member().sign();

    let answer = get(
        &gateway.url("/_meingpt/auth"),
        &[("x-meingpt-jwt", &member)],
    )
    .await;

    assert_eq!(answer.status, 400);
    assert_eq!(answer.header("x-auth-request-user"), None);
    assert_eq!(answer.body, "bad request: the original URI is missing\n");
}

#[tokio::test]
async fn forward_auth_answers_only_trusted_proxies() {
    let (issuer, _upstream, gateway) = setup_with("trusted_proxies = [\"10.0.0.0/8\"]\n").await;
    let admin = issuer.demo_admin().sign();

    // This test's client is on loopback, outside 10.0.0.0/8.
    let answer = get(
        &gateway.url("/_meingpt/auth"),
        &[("x-meingpt-jwt", &admin), ("x-original-uri", "/admin/x")],
    )
    .await;

    assert_eq!(answer.status, 403);
    assert_eq!(answer.header("x-auth-request-user"), None);
    assert_eq!(answer.body, "forward auth answers trusted proxies only\n");
}

//! Forward auth: the reserved endpoint nginx, Caddy, Traefik and Envoy ask.

use meingpt_auth::testing::MockIssuer;

use crate::common::{Gateway, Upstream, auth_toml, get, get_raw, payload_of};

async fn setup() -> (MockIssuer, Upstream, Gateway) {
    let issuer = MockIssuer::start().await;
    let upstream = Upstream::start().await;
    let toml = format!(
        "{}[[route]]\nprefix = \"/admin\"\nupstream = \"{url}\"\nroles = [\"admin\"]\n\
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

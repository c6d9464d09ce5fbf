//! The layer end to end: token sources, the user in handlers, guards,
//! extractors and the RFC 6750 answers, through a real server on loopback.

use crate::common::{app, get_with, get_with_token, serve};
use axum::Router;
use axum::body::Body;
use axum::routing::get;
use http::{Request, StatusCode};
use meingpt_auth::testing::MockIssuer;
use meingpt_auth::{MeinGptUser, Role, require_any_role, require_team_id, require_user};
use tower::{ServiceBuilder, ServiceExt, service_fn};

#[tokio::test]
async fn valid_token_in_meingpt_header_reaches_the_handler_with_the_user() {
    let issuer = MockIssuer::start().await;
    let base = serve(app(&issuer.auth().build().unwrap())).await;
    let token = issuer
        .token()
        .sub("u-42")
        .role("admin")
        .team("t1", "Engineering")
        .sign();

    let seen = get_with_token(&format!("{base}/me"), &token).await;

    assert_eq!(seen.status, 200);
    let user = seen.json();
    assert_eq!(user["sub"], "u-42");
    assert_eq!(user["role"], "admin");
    assert_eq!(user["organization_id"], "org-test");
    assert_eq!(user["teams"][0]["name"], "Engineering");
    assert_eq!(issuer.fetch_count(), 1);
}

#[tokio::test]
async fn bearer_token_is_accepted_with_any_scheme_case() {
    let issuer = MockIssuer::start().await;
    let base = serve(app(&issuer.auth().build().unwrap())).await;
    let token = issuer.token().sign();
    for scheme in ["Bearer", "bearer", "BEARER"] {
        let header = format!("{scheme} {token}");
        let seen = get_with(&format!("{base}/me"), &[("authorization", &header)]).await;
        assert_eq!(seen.status, 200, "{scheme}");
    }
}

#[tokio::test]
async fn meingpt_header_wins_over_an_api_key_in_authorization() {
    let issuer = MockIssuer::start().await;
    let base = serve(app(&issuer.auth().build().unwrap())).await;
    let token = issuer.token().sign();
    let seen = get_with(
        &format!("{base}/me"),
        &[
            ("authorization", "Bearer sk-live-api-key"),
            ("x-meingpt-jwt", &token),
        ],
    )
    .await;
    assert_eq!(seen.status, 200);
}

#[tokio::test]
async fn missing_token_gets_a_bare_challenge_and_no_fetch() {
    let issuer = MockIssuer::start().await;
    let base = serve(app(&issuer.auth().build().unwrap())).await;

    let seen = get_with(&format!("{base}/me"), &[]).await;

    assert_eq!(seen.status, 401);
    assert_eq!(
        seen.www_authenticate.as_deref(),
        Some("Bearer realm=\"meingpt\"")
    );
    assert_eq!(
        seen.json()["error_description"],
        "a bearer token is required"
    );
    assert_eq!(issuer.fetch_count(), 0);
    assert_eq!(get_with(&format!("{base}/health"), &[]).await.status, 200);
}

#[tokio::test]
async fn malformed_credentials_are_invalid_requests() {
    let issuer = MockIssuer::start().await;
    let base = serve(app(&issuer.auth().build().unwrap())).await;
    let url = format!("{base}/me");

    for (headers, description) in [
        (
            vec![("authorization", "Bearer")],
            "the bearer token is empty",
        ),
        (
            vec![("authorization", "Bearer a.b c")],
            "the credentials are not a well-formed bearer token",
        ),
        (
            vec![("x-meingpt-jwt", "a.b.c"), ("x-meingpt-jwt", "d.e.f")],
            "credentials were sent more than once",
        ),
    ] {
        let seen = get_with(&url, &headers).await;
        assert_eq!(seen.status, 400, "{headers:?}");
        assert_eq!(
            seen.www_authenticate.as_deref(),
            Some(
                format!(
                    "Bearer realm=\"meingpt\", error=\"invalid_request\", error_description=\"{description}\""
                )
                .as_str()
            )
        );
        assert_eq!(seen.json()["error"], "invalid_request");
    }
    assert_eq!(issuer.fetch_count(), 0);
}

#[tokio::test]
async fn role_guard_admits_admins_and_refuses_members_with_insufficient_scope() {
    let issuer = MockIssuer::start().await;
    let base = serve(app(&issuer.auth().build().unwrap())).await;
    let url = format!("{base}/admin");

    let admin = get_with_token(&url, &issuer.token().role("admin").sign()).await;
    assert_eq!(admin.status, 200);
    assert_eq!(admin.body, "admin area");

    for role in ["member", "viewer", "Admin"] {
        let seen = get_with_token(&url, &issuer.token().role(role).sign()).await;
        assert_eq!(seen.status, 403, "{role}");
        assert_eq!(
            seen.www_authenticate.as_deref(),
            Some(
                "Bearer realm=\"meingpt\", error=\"insufficient_scope\", \
                 error_description=\"the user lacks the role or team this resource requires\""
            )
        );
        assert_eq!(seen.json()["error"], "insufficient_scope");
    }
}

#[tokio::test]
async fn unknown_role_still_authenticates() {
    let issuer = MockIssuer::start().await;
    let base = serve(app(&issuer.auth().build().unwrap())).await;
    let seen = get_with_token(&format!("{base}/me"), &issuer.token().role("viewer").sign()).await;
    assert_eq!(seen.status, 200);
    assert_eq!(seen.json()["role"], "viewer");
}

#[tokio::test]
async fn team_guard_admits_members_of_that_team_only() {
    let issuer = MockIssuer::start().await;
    let base = serve(app(&issuer.auth().build().unwrap())).await;
    let url = format!("{base}/engineering");

    let engineer = issuer
        .token()
        .team("t9", "Marketing")
        .team("team-eng", "Engineering")
        .sign();
    assert_eq!(get_with_token(&url, &engineer).await.status, 200);
    let marketer = issuer.token().team("t9", "Marketing").sign();
    assert_eq!(get_with_token(&url, &marketer).await.status, 403);
    let no_teams = issuer.token().without("teams").sign();
    assert_eq!(get_with_token(&url, &no_teams).await.status, 403);
}

#[tokio::test]
async fn team_id_any_role_and_predicate_guards_decide_by_the_user() {
    let issuer = MockIssuer::start().await;
    let auth = issuer.auth().build().unwrap();
    let router = Router::new()
        .route(
            "/team",
            get(|| async { "ok" }).route_layer(require_team_id("t1")),
        )
        .route(
            "/staff",
            get(|| async { "ok" }).route_layer(require_any_role([Role::Admin, Role::Member])),
        )
        .route(
            "/company",
            get(|| async { "ok" }).route_layer(require_user(|user: &MeinGptUser| {
                user.email()
                    .is_some_and(|email| email.ends_with("@example.com"))
            })),
        )
        .layer(auth.layer());
    let base = serve(router).await;

    let in_t1 = issuer.token().team("t1", "Renamed team").sign();
    let other = issuer
        .token()
        .team("t2", "Engineering")
        .role("viewer")
        .email("x@evil.test")
        .sign();
    assert_eq!(
        get_with_token(&format!("{base}/team"), &in_t1).await.status,
        200
    );
    assert_eq!(
        get_with_token(&format!("{base}/team"), &other).await.status,
        403
    );
    assert_eq!(
        get_with_token(&format!("{base}/staff"), &in_t1)
            .await
            .status,
        200
    );
    assert_eq!(
        get_with_token(&format!("{base}/staff"), &other)
            .await
            .status,
        403
    );
    assert_eq!(
        get_with_token(&format!("{base}/company"), &in_t1)
            .await
            .status,
        200
    );
    assert_eq!(
        get_with_token(&format!("{base}/company"), &other)
            .await
            .status,
        403
    );
}

#[tokio::test]
async fn optional_layer_serves_anonymous_users_but_still_rejects_bad_tokens() {
    let issuer = MockIssuer::start().await;
    let auth = issuer.auth().build().unwrap();
    let router = Router::new()
        .route(
            "/hello",
            get(|user: Option<MeinGptUser>| async move {
                match user {
                    Some(user) => format!("hello {}", user.sub()),
                    None => "hello stranger".to_owned(),
                }
            }),
        )
        .route(
            "/me",
            get(|user: MeinGptUser| async move { user.sub().to_owned() }),
        )
        .route(
            "/admin",
            get(|| async { "admin" }).route_layer(meingpt_auth::require_role(Role::Admin)),
        )
        .layer(auth.optional_layer());
    let base = serve(router).await;

    let anonymous = get_with(&format!("{base}/hello"), &[]).await;
    assert_eq!(
        (anonymous.status, anonymous.body.as_str()),
        (200, "hello stranger")
    );

    let known = get_with_token(&format!("{base}/hello"), &issuer.token().sub("u7").sign()).await;
    assert_eq!((known.status, known.body.as_str()), (200, "hello u7"));

    let expired = issuer.token().expires_at(1_000_000).sign();
    get_with_token(&format!("{base}/hello"), &expired)
        .await
        .assert_invalid_token("the token has expired");

    for path in ["/me", "/admin"] {
        let seen = get_with(&format!("{base}{path}"), &[]).await;
        assert_eq!(seen.status, 401, "{path}");
        assert_eq!(
            seen.www_authenticate.as_deref(),
            Some("Bearer realm=\"meingpt\"")
        );
    }
}

#[tokio::test]
async fn extractor_without_the_layer_is_a_500_that_names_the_layer() {
    let router = Router::new()
        .route(
            "/me",
            get(|user: MeinGptUser| async move { user.sub().to_owned() }),
        )
        .route(
            "/maybe",
            get(|user: Option<MeinGptUser>| async move { format!("{}", user.is_some()) }),
        )
        .route(
            "/admin",
            get(|| async { "admin" }).route_layer(meingpt_auth::require_role(Role::Admin)),
        );
    let base = serve(router).await;
    for path in ["/me", "/maybe", "/admin"] {
        let seen = get_with(&format!("{base}{path}"), &[]).await;
        assert_eq!(seen.status, 500, "{path}");
        assert!(seen.body.contains("MeinGptAuth::layer()"), "{}", seen.body);
    }
}

#[tokio::test]
async fn custom_realm_is_named_in_every_challenge() {
    let issuer = MockIssuer::start().await;
    let auth = issuer.auth().realm("acme-mcp").build().unwrap();
    let base = serve(app(&auth)).await;
    let seen = get_with(&format!("{base}/me"), &[]).await;
    assert_eq!(
        seen.www_authenticate.as_deref(),
        Some("Bearer realm=\"acme-mcp\"")
    );
    let seen = get_with_token(&format!("{base}/admin"), &issuer.token().sign()).await;
    assert!(
        seen.www_authenticate
            .unwrap()
            .starts_with("Bearer realm=\"acme-mcp\", error=\"insufficient_scope\"")
    );
}

#[tokio::test]
async fn layer_works_on_a_plain_tower_service_builder_stack() {
    let issuer = MockIssuer::start().await;
    let auth = issuer.auth().build().unwrap();
    let service = ServiceBuilder::new()
        .layer(auth.layer())
        .layer(meingpt_auth::require_role(Role::Admin))
        .service(service_fn(|req: Request<String>| async move {
            let user = req.extensions().get::<MeinGptUser>().cloned().unwrap();
            Ok::<_, std::convert::Infallible>(http::Response::new(format!("hi {}", user.sub())))
        }));

    let request = |token: Option<String>| {
        let mut builder = Request::get("/");
        if let Some(token) = token {
            builder = builder.header("authorization", format!("Bearer {token}"));
        }
        builder.body(String::new()).unwrap()
    };

    let ok = service
        .clone()
        .oneshot(request(Some(
            issuer.token().sub("boss").role("admin").sign(),
        )))
        .await
        .unwrap();
    assert_eq!(ok.status(), StatusCode::OK);
    assert_eq!(body_text(ok).await, "hi boss");

    let member = service
        .clone()
        .oneshot(request(Some(issuer.token().role("member").sign())))
        .await
        .unwrap();
    assert_eq!(member.status(), StatusCode::FORBIDDEN);

    let anonymous = service.oneshot(request(None)).await.unwrap();
    assert_eq!(anonymous.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(
        anonymous.headers()["www-authenticate"],
        "Bearer realm=\"meingpt\""
    );
    let body: serde_json::Value = serde_json::from_str(&body_text(anonymous).await).unwrap();
    assert_eq!(body["error_description"], "a bearer token is required");
}

async fn body_text<B>(response: http::Response<B>) -> String
where
    B: http_body::Body,
    B::Error: std::fmt::Debug,
{
    use http_body_util::BodyExt;
    let bytes = response.into_body().collect().await.unwrap().to_bytes();
    String::from_utf8(bytes.to_vec()).unwrap()
}

#[tokio::test]
async fn the_same_auth_verifies_outside_http_too() {
    let issuer = MockIssuer::start().await;
    let auth = issuer.auth().build().unwrap();
    let user = auth
        .verify(&issuer.token().sub("ws-user").sign())
        .await
        .unwrap();
    assert_eq!(user.sub(), "ws-user");
    let response = Router::new()
        .route("/", get(|| async { "x" }))
        .layer(auth.layer())
        .oneshot(Request::get("/").body(Body::empty()).unwrap())
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
}

/// Sends the head of a request over a fresh HTTP/1.1 connection to `base`
/// and reads the answer's head, lowercased.
async fn answer_head_to(base: &str, head: &str) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    let addr = base.trim_start_matches("http://");
    let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    stream
        .write_all(head.replace("{addr}", addr).as_bytes())
        .await
        .unwrap();
    let mut answer = Vec::new();
    let mut buffer = [0u8; 4096];
    while !String::from_utf8_lossy(&answer).contains("\r\n\r\n") {
        let read =
            tokio::time::timeout(std::time::Duration::from_secs(20), stream.read(&mut buffer))
                .await
                .expect("an answer before the body")
                .unwrap();
        assert!(read > 0, "closed before answering");
        answer.extend_from_slice(&buffer[..read]);
    }
    String::from_utf8_lossy(&answer).to_lowercase()
}

#[tokio::test]
async fn a_refusal_of_a_request_whose_body_is_unread_says_the_connection_closes() {
    let issuer = MockIssuer::start().await;
    let base = serve(app(&issuer.auth().build().unwrap())).await;

    // An MCP client's first POST, its body not sent yet: refused before it
    // arrives, so the connection will not serve another request.
    for framing in ["Content-Length: 47", "Transfer-Encoding: chunked"] {
        let answer = answer_head_to(
            &base,
            &format!("POST /me HTTP/1.1\r\nHost: {{addr}}\r\n{framing}\r\n\r\n"),
        )
        .await;
        assert!(answer.starts_with("http/1.1 401"), "{framing}: {answer}");
        assert!(
            answer.contains("\r\nconnection: close\r\n"),
            "{framing}: {answer}"
        );
    }

    // A refused request without a body keeps its connection.
    for head in [
        "GET /me HTTP/1.1\r\nHost: {addr}\r\n\r\n",
        "POST /me HTTP/1.1\r\nHost: {addr}\r\nContent-Length: 0\r\n\r\n",
    ] {
        let answer = answer_head_to(&base, head).await;
        assert!(answer.starts_with("http/1.1 401"), "{answer}");
        assert!(!answer.contains("\r\nconnection:"), "{answer}");
    }
}

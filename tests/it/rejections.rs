//! How refusals look on the wire: the application's own rendering hook
//! (HTML, RFC 9457 problem details), the error codes, authentication by the
//! application's own middleware, and `Cache-Control` on authenticated
//! answers. Everything over real HTTP on loopback.

use axum::extract::Request;
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use http::header;
use meingpt_auth::rejection::Rejection;
use meingpt_auth::testing::MockIssuer;
use meingpt_auth::{AuthError, MeinGptAuth, MeinGptUser, Role, TokenSource, require_role};

use crate::common::{get_with, get_with_token, serve};

/// `/me` for anyone signed in and `/admin` for admins, behind `layer`.
fn routes(layer: meingpt_auth::AuthLayer) -> Router {
    Router::new()
        .route("/me", get(|user: MeinGptUser| async move { Json(user) }))
        .route(
            "/admin",
            get(|| async { "admin area" }).route_layer(require_role(Role::Admin)),
        )
        .layer(layer)
}

async fn get_raw(url: &str, headers: &[(&str, &str)]) -> reqwest::Response {
    let mut request = reqwest::Client::new().get(url);
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    request.send().await.unwrap()
}

fn header_of(response: &reqwest::Response, name: &str) -> Option<String> {
    response
        .headers()
        .get(name)
        .map(|value| value.to_str().unwrap().to_owned())
}

/// A browser gets a sign-in page; API clients keep the JSON default.
fn html_for_browsers(rejection: &Rejection<'_>) -> http::Response<bytes::Bytes> {
    let wants_html = rejection
        .request()
        .headers
        .get(header::ACCEPT)
        .and_then(|accept| accept.to_str().ok())
        .is_some_and(|accept| accept.contains("text/html"));
    if !wants_html {
        return rejection.default_response();
    }
    let page = format!(
        "<!doctype html><title>Sign in</title><h1>Please sign in through meinGPT</h1><p>{}</p>",
        rejection.error()
    );
    rejection.response("text/html; charset=utf-8", page)
}

#[tokio::test]
async fn html_hook_answers_browsers_with_a_page_and_keeps_status_and_challenge() {
    let issuer = MockIssuer::start().await;
    let auth = issuer.auth().build().unwrap();
    let base = serve(routes(
        auth.layer().render_rejections_with(html_for_browsers),
    ))
    .await;
    let browser = [("accept", "text/html,application/xhtml+xml")];

    // No token: the layer's refusal, as a page.
    let response = get_raw(&format!("{base}/me"), &browser).await;
    assert_eq!(response.status(), 401);
    assert_eq!(
        header_of(&response, "www-authenticate").as_deref(),
        Some("Bearer realm=\"meingpt\"")
    );
    assert_eq!(
        header_of(&response, "content-type").as_deref(),
        Some("text/html; charset=utf-8")
    );
    assert_eq!(
        header_of(&response, "cache-control").as_deref(),
        Some("no-store")
    );
    let page = response.text().await.unwrap();
    assert!(
        page.contains("<h1>Please sign in through meinGPT</h1>"),
        "{page}"
    );
    assert!(page.contains("a bearer token is required"), "{page}");

    // A member on the admin route: the guard's refusal goes through the same hook.
    let member = issuer.token().role("member").sign();
    let response = get_raw(
        &format!("{base}/admin"),
        &[browser[0], ("x-meingpt-jwt", &member)],
    )
    .await;
    assert_eq!(response.status(), 403);
    assert!(
        header_of(&response, "www-authenticate")
            .unwrap()
            .starts_with("Bearer realm=\"meingpt\", error=\"insufficient_scope\"")
    );
    assert!(
        response
            .text()
            .await
            .unwrap()
            .contains("the user lacks the role or team this resource requires")
    );

    // An API client still gets the RFC 6750 JSON.
    let seen = get_with(&format!("{base}/me"), &[]).await;
    assert_eq!(seen.status, 401);
    assert_eq!(seen.json()["error"], "unauthorized");
}

/// RFC 9457 problem details for an API.
fn problem_json(rejection: &Rejection<'_>) -> http::Response<bytes::Bytes> {
    let error = rejection.error();
    let problem = serde_json::json!({
        "type": format!("https://errors.example.com/{}", error.error_code()),
        "title": error.error_code(),
        "status": error.status().as_u16(),
        "detail": error.description(),
    });
    rejection.response("application/problem+json", problem.to_string())
}

#[tokio::test]
async fn problem_json_hook_renders_rfc_9457_with_the_protocols_status_and_challenge() {
    let issuer = MockIssuer::start().await;
    let auth = issuer.auth().realm("acme-api").build().unwrap();
    let base = serve(routes(auth.layer().render_rejections_with(problem_json))).await;

    let expired = issuer.token().expires_at(1_000_000).sign();
    let response = get_raw(&format!("{base}/me"), &[("x-meingpt-jwt", &expired)]).await;
    assert_eq!(response.status(), 401);
    let challenge = header_of(&response, "www-authenticate").unwrap();
    let description = challenge
        .strip_prefix("Bearer realm=\"acme-api\", error=\"invalid_token\", error_description=\"")
        .and_then(|rest| rest.strip_suffix('"'))
        .unwrap_or_else(|| panic!("not an invalid_token challenge: {challenge}"))
        .to_owned();
    assert_eq!(
        header_of(&response, "content-type").as_deref(),
        Some("application/problem+json")
    );
    let problem: serde_json::Value = response.json().await.unwrap();
    assert_eq!(problem["status"], 401);
    assert_eq!(problem["title"], "invalid_token");
    assert_eq!(problem["detail"], description);

    let member = issuer.token().role("member").sign();
    let response = get_raw(&format!("{base}/admin"), &[("x-meingpt-jwt", &member)]).await;
    assert_eq!(response.status(), 403);
    let problem: serde_json::Value = response.json().await.unwrap();
    assert_eq!(problem["status"], 403);
    assert_eq!(problem["title"], "insufficient_scope");
}

#[tokio::test]
async fn without_a_hook_the_configured_realm_is_used_by_layer_guard_and_extractor() {
    let issuer = MockIssuer::start().await;
    let auth = issuer.auth().realm("acme-mcp").build().unwrap();
    let base = serve(routes(auth.optional_layer())).await;

    // The extractor refuses an anonymous request behind the optional layer.
    let seen = get_with(&format!("{base}/me"), &[]).await;
    assert_eq!(seen.status, 401);
    assert_eq!(
        seen.www_authenticate.as_deref(),
        Some("Bearer realm=\"acme-mcp\"")
    );
    // The guard refuses it too, in the same words.
    let seen = get_with(&format!("{base}/admin"), &[]).await;
    assert_eq!(seen.status, 401);
    assert_eq!(
        seen.www_authenticate.as_deref(),
        Some("Bearer realm=\"acme-mcp\"")
    );
}

#[tokio::test]
async fn error_codes_agree_with_the_body_on_the_wire() {
    let issuer = MockIssuer::start().await;
    let base = serve(routes(issuer.auth().build().unwrap().layer())).await;
    let member = issuer.token().role("member").sign();
    let expired = issuer.token().expires_at(1_000_000).sign();

    let cases = [
        (
            AuthError::MissingToken,
            get_with(&format!("{base}/me"), &[]).await,
        ),
        (
            AuthError::InvalidToken(meingpt_auth::InvalidToken::Expired),
            get_with_token(&format!("{base}/me"), &expired).await,
        ),
        (
            AuthError::InsufficientScope,
            get_with_token(&format!("{base}/admin"), &member).await,
        ),
        (
            AuthError::InvalidRequest(meingpt_auth::InvalidRequest::EmptyToken),
            get_with(&format!("{base}/me"), &[("authorization", "Bearer ")]).await,
        ),
    ];
    for (error, seen) in cases {
        assert_eq!(seen.status, error.status().as_u16(), "{error:?}");
        assert_eq!(seen.json()["error"], error.error_code(), "{error:?}");
        assert_eq!(seen.json()["error_description"], error.description());
    }
    assert_eq!(AuthError::MissingToken.error_code(), "unauthorized");
}

/// The application's own middleware: authenticates, answers failures its
/// own way, and hands the user on.
async fn own_authentication(auth: MeinGptAuth, mut request: Request, next: Next) -> Response {
    match auth.authenticate(request.headers()).await {
        Ok(user) => {
            auth.attach_user(request.extensions_mut(), user);
            next.run(request).await
        }
        Err(error) => (error.status(), format!("custom: {error}")).into_response(),
    }
}

#[tokio::test]
async fn own_middleware_attaches_the_user_for_the_extractor_and_the_guards() {
    let issuer = MockIssuer::start().await;
    let auth = issuer.auth().build().unwrap();
    let middleware_auth = auth.clone();
    let app = Router::new()
        .route("/me", get(|user: MeinGptUser| async move { Json(user) }))
        .route(
            "/admin",
            get(|| async { "admin area" }).route_layer(require_role(Role::Admin)),
        )
        .layer(middleware::from_fn(move |request, next| {
            own_authentication(middleware_auth.clone(), request, next)
        }))
        .route(
            "/unguarded",
            get(|user: MeinGptUser| async move { user.sub().to_owned() }),
        );
    let base = serve(app).await;

    let admin = issuer.token().sub("root").role("admin").sign();
    let member = issuer.token().sub("m-1").role("member").sign();

    let seen = get_with_token(&format!("{base}/me"), &member).await;
    assert_eq!(seen.status, 200, "{}", seen.body);
    assert_eq!(seen.json()["sub"], "m-1");
    assert_eq!(
        get_with_token(&format!("{base}/admin"), &admin)
            .await
            .status,
        200
    );
    let seen = get_with_token(&format!("{base}/admin"), &member).await;
    assert_eq!(seen.status, 403);
    assert_eq!(seen.json()["error"], "insufficient_scope");

    // Anonymous: the middleware let it through, so the extractor asks for a token.
    let seen = get_with(&format!("{base}/me"), &[]).await;
    assert_eq!(seen.status, 401);
    assert_eq!(
        seen.www_authenticate.as_deref(),
        Some("Bearer realm=\"meingpt\"")
    );
    // A bad token is the middleware's to answer.
    let seen = get_with_token(&format!("{base}/me"), "a.b.c").await;
    assert_eq!(seen.status, 401);
    assert!(seen.body.starts_with("custom: "), "{}", seen.body);

    // A route no authentication ran for is still the server's mistake.
    let seen = get_with_token(&format!("{base}/unguarded"), &member).await;
    assert_eq!(seen.status, 500);
    assert!(seen.body.contains("MeinGptAuth::layer()"), "{}", seen.body);
}

/// The `Cache-Control` a response to `headers` carries on `/me` of `app`.
async fn cache_control(base: &str, path: &str, headers: &[(&str, &str)]) -> Option<String> {
    let response = get_raw(&format!("{base}{path}"), headers).await;
    assert_eq!(response.status(), 200);
    header_of(&response, "cache-control")
}

#[tokio::test]
async fn answer_to_a_token_in_a_custom_header_or_cookie_is_marked_private() {
    let issuer = MockIssuer::start().await;
    let auth = issuer
        .auth()
        .token_sources([
            TokenSource::MeinGptHeader,
            TokenSource::Cookie("session".into()),
            TokenSource::AuthorizationBearer,
        ])
        .build()
        .unwrap();
    let app = Router::new()
        .route("/me", get(|user: MeinGptUser| async move { Json(user) }))
        .route(
            "/cached",
            get(|| async { ([(header::CACHE_CONTROL, "public, max-age=60")], "shared") }),
        )
        .layer(auth.optional_layer());
    let base = serve(app).await;
    let token = issuer.token().sign();

    assert_eq!(
        cache_control(&base, "/me", &[("x-meingpt-jwt", &token)])
            .await
            .as_deref(),
        Some("private")
    );
    let cookie = format!("theme=dark; session={token}");
    assert_eq!(
        cache_control(&base, "/me", &[("cookie", &cookie)])
            .await
            .as_deref(),
        Some("private")
    );
    // Shared caches already treat `Authorization` as a credential.
    let bearer = format!("Bearer {token}");
    assert_eq!(
        cache_control(&base, "/me", &[("authorization", &bearer)]).await,
        None
    );
    // What the handler says about caching is kept.
    assert_eq!(
        cache_control(&base, "/cached", &[("x-meingpt-jwt", &token)])
            .await
            .as_deref(),
        Some("public, max-age=60")
    );
    // Anonymous answers are nobody's in particular.
    assert_eq!(
        cache_control(&base, "/cached", &[]).await.as_deref(),
        Some("public, max-age=60")
    );
}

/// The verdict a response carries in its extensions, and its status.
async fn verdict_of(
    app: &Router,
    request: http::Request<axum::body::Body>,
) -> (u16, Option<AuthError>) {
    use tower::ServiceExt;
    let response = app.clone().oneshot(request).await.unwrap();
    let verdict = response.extensions().get::<AuthError>().cloned();
    (response.status().as_u16(), verdict)
}

fn request_to(path: &str, headers: &[(&str, &str)]) -> http::Request<axum::body::Body> {
    let mut request = http::Request::get(path);
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    request.body(axum::body::Body::empty()).unwrap()
}

#[tokio::test]
async fn every_refusal_carries_its_auth_error_in_the_response_extensions() {
    use meingpt_auth::{InvalidRequest, InvalidToken};
    let issuer = MockIssuer::start().await;
    let auth = issuer.auth().build().unwrap();
    let app = routes(auth.layer());
    let member = issuer.token().role("member").sign();
    let admin = issuer.token().role("admin").sign();
    let expired = issuer.token().expires_at(1_000_000).sign();

    // The layer's refusals.
    assert_eq!(
        verdict_of(&app, request_to("/me", &[])).await,
        (401, Some(AuthError::MissingToken))
    );
    assert_eq!(
        verdict_of(&app, request_to("/me", &[("x-meingpt-jwt", &expired)])).await,
        (401, Some(AuthError::InvalidToken(InvalidToken::Expired)))
    );
    assert_eq!(
        verdict_of(&app, request_to("/me", &[("authorization", "Bearer ")])).await,
        (
            400,
            Some(AuthError::InvalidRequest(InvalidRequest::EmptyToken))
        )
    );
    // The guard's.
    assert_eq!(
        verdict_of(&app, request_to("/admin", &[("x-meingpt-jwt", &member)])).await,
        (403, Some(AuthError::InsufficientScope))
    );
    // A served request carries none.
    assert_eq!(
        verdict_of(&app, request_to("/admin", &[("x-meingpt-jwt", &admin)])).await,
        (200, None)
    );
    // The extractor's, behind the optional layer.
    let optional = routes(auth.optional_layer());
    assert_eq!(
        verdict_of(&optional, request_to("/me", &[])).await,
        (401, Some(AuthError::MissingToken))
    );
    // The gRPC shape answers HTTP 200; the verdict still says what happened.
    assert_eq!(
        verdict_of(
            &app,
            request_to("/me", &[("content-type", "application/grpc")])
        )
        .await,
        (200, Some(AuthError::MissingToken))
    );
    // So does `MeinGptAuth::reject`, for code that answers by itself.
    let rejected: http::Response<String> = auth.reject(&AuthError::InsufficientScope);
    assert_eq!(
        rejected.extensions().get::<AuthError>(),
        Some(&AuthError::InsufficientScope)
    );
}

#[tokio::test]
async fn a_hook_that_builds_its_response_from_scratch_still_sends_the_verdict_along() {
    let issuer = MockIssuer::start().await;
    let auth = issuer.auth().build().unwrap();
    let app = routes(auth.layer().render_rejections_with(|_| {
        let mut response = http::Response::new(bytes::Bytes::from_static(b"go away"));
        *response.status_mut() = http::StatusCode::IM_A_TEAPOT;
        response
    }));
    let member = issuer.token().role("member").sign();

    assert_eq!(
        verdict_of(&app, request_to("/me", &[])).await,
        (418, Some(AuthError::MissingToken))
    );
    assert_eq!(
        verdict_of(&app, request_to("/admin", &[("x-meingpt-jwt", &member)])).await,
        (418, Some(AuthError::InsufficientScope))
    );
}

#[tokio::test]
async fn keys_that_cannot_be_had_are_told_apart_from_other_503s() {
    let issuer = MockIssuer::start().await;
    issuer.fail(meingpt_auth::testing::Fault::Status(500));
    let auth = issuer.auth().build().unwrap();
    let app = routes(auth.layer());
    let token = issuer.token().sign();

    let (status, verdict) = verdict_of(&app, request_to("/me", &[("x-meingpt-jwt", &token)])).await;
    assert_eq!(status, 503);
    assert!(
        matches!(verdict, Some(AuthError::KeysUnavailable { .. })),
        "{verdict:?}"
    );
}

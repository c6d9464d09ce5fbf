//! OAuth 2.0 Protected Resource Metadata (RFC 9728) and what goes with it:
//! the document served publicly at its well-known URLs, the
//! `resource_metadata` and `scope` parameters of every challenge (through
//! the one renderer, so hooks and the gRPC shape keep them), and audience
//! binding to the resource (RFC 8707) beside meinGPT's organization
//! audience.

use std::convert::Infallible;

use axum::Router;
use axum::body::Body;
use axum::routing::get;
use http::{Request, Response, StatusCode, header};
use http_body_util::BodyExt;
use meingpt_auth::testing::MockIssuer;
use meingpt_auth::{
    MeinGptAuth, MeinGptUser, ProtectedResource, Role, require_all_scopes, require_any_scope,
    require_role, require_scope, require_user,
};
use serde_json::{Value, json};
use tower::ServiceExt;

use crate::common::answers::{MALFORMED, WRONG_AUDIENCE};

const RESOURCE: &str = "https://mcp.example.com/mcp";
const METADATA_URL: &str = "https://mcp.example.com/.well-known/oauth-protected-resource/mcp";

/// meinGPT (organization `org-test`) beside an OAuth authorization server
/// whose tokens are bound to [`RESOURCE`].
struct World {
    meingpt: MockIssuer,
    oauth: MockIssuer,
    auth: MeinGptAuth,
}

impl World {
    async fn start() -> Self {
        let meingpt = MockIssuer::start().await;
        let oauth = MockIssuer::for_organization("oauth").await;
        let auth = MeinGptAuth::from_issuers([
            meingpt.auth().protected_resource(
                ProtectedResource::new(RESOURCE)
                    .scopes_supported(["mcp:tools"])
                    .resource_name("Acme tools"),
            ),
            MeinGptAuth::oidc(oauth.issuer()).resource_audience(),
        ])
        .unwrap();
        Self {
            meingpt,
            oauth,
            auth,
        }
    }

    /// An access token of the authorization server for `aud`.
    fn access_token(&self, aud: Value, scope: &str) -> String {
        self.oauth
            .token()
            .sub("ci-bot")
            .audience(aud)
            .claim("scope", scope)
            .without("role")
            .sign()
    }

    fn app(&self) -> Router {
        Router::new()
            .route(
                "/me",
                get(|user: MeinGptUser| async move { user.sub().to_owned() }),
            )
            .route(
                "/files",
                get(|| async { "files" }).route_layer(require_scope("files:read")),
            )
            .route(
                "/share",
                get(|| async { "shared" })
                    .route_layer(require_all_scopes(["files:read", "files:share"])),
            )
            .route(
                "/either",
                get(|| async { "either" })
                    .route_layer(require_any_scope(["files:read", "files:admin"])),
            )
            .route(
                "/admin",
                get(|| async { "admins" }).route_layer(require_role(Role::Admin)),
            )
            .layer(self.auth.layer())
            .merge(self.auth.resource_metadata().unwrap().router())
    }
}

async fn send(app: &Router, request: Request<Body>) -> (StatusCode, http::HeaderMap, String) {
    let response = app.clone().oneshot(request).await.unwrap();
    let (parts, body) = response.into_parts();
    let body = body.collect().await.unwrap().to_bytes();
    (
        parts.status,
        parts.headers,
        String::from_utf8_lossy(&body).into_owned(),
    )
}

fn get_with(path: &str, bearer: Option<&str>) -> Request<Body> {
    let mut request = Request::get(path);
    if let Some(token) = bearer {
        request = request.header(header::AUTHORIZATION, format!("Bearer {token}"));
    }
    request.body(Body::empty()).unwrap()
}

fn challenge(headers: &http::HeaderMap) -> &str {
    headers[header::WWW_AUTHENTICATE].to_str().unwrap()
}

#[tokio::test]
async fn the_document_is_served_publicly_at_the_root_and_the_path_suffixed_well_known_url() {
    let world = World::start().await;
    let app = world.app();
    let expected = json!({
        "resource": RESOURCE,
        "authorization_servers": [world.oauth.issuer(), world.meingpt.issuer()],
        "scopes_supported": ["mcp:tools"],
        "bearer_methods_supported": ["header"],
        "resource_name": "Acme tools",
    });
    for path in [
        "/.well-known/oauth-protected-resource/mcp",
        "/.well-known/oauth-protected-resource",
    ] {
        let (status, headers, body) = send(&app, get_with(path, None)).await;
        assert_eq!(status, StatusCode::OK, "{path}");
        assert_eq!(headers[header::CONTENT_TYPE], "application/json");
        assert_eq!(headers[header::CACHE_CONTROL], "public, max-age=3600");
        assert_eq!(headers[header::ACCESS_CONTROL_ALLOW_ORIGIN], "*");
        assert_eq!(serde_json::from_str::<Value>(&body).unwrap(), expected);
        assert_eq!(
            body.as_bytes(),
            world.auth.resource_metadata().unwrap().document()
        );
    }
    let head = Request::head("/.well-known/oauth-protected-resource/mcp")
        .body(Body::empty())
        .unwrap();
    let (status, _, body) = send(&app, head).await;
    assert_eq!((status, body.as_str()), (StatusCode::OK, ""));

    // A browser-based client's preflight, and methods the document has not.
    let preflight = Request::options("/.well-known/oauth-protected-resource/mcp")
        .header("origin", "https://inspector.example")
        .header("access-control-request-headers", "mcp-protocol-version")
        .body(Body::empty())
        .unwrap();
    let (status, headers, _) = send(&app, preflight).await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    assert_eq!(
        headers[header::ACCESS_CONTROL_ALLOW_HEADERS],
        "mcp-protocol-version"
    );
    let post = Request::post("/.well-known/oauth-protected-resource")
        .body(Body::empty())
        .unwrap();
    let (status, headers, _) = send(&app, post).await;
    assert_eq!(status, StatusCode::METHOD_NOT_ALLOWED);
    assert_eq!(headers[header::ALLOW], "GET, HEAD, OPTIONS");
    // Another resource's path is not this document's.
    let (status, _, _) = send(
        &app,
        get_with("/.well-known/oauth-protected-resource/other", None),
    )
    .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn the_metadata_layer_answers_its_paths_before_the_auth_layer_in_any_tower_stack() {
    let world = World::start().await;
    let metadata = world.auth.resource_metadata().unwrap().clone();
    let inner = tower::service_fn(|_: Request<Body>| async {
        Ok::<_, Infallible>(Response::new(Body::from("upstream")))
    });
    let stack = tower::ServiceBuilder::new()
        .layer(metadata.layer())
        .layer(world.auth.layer())
        .service(inner);

    let response = stack
        .clone()
        .oneshot(get_with("/.well-known/oauth-protected-resource/mcp", None))
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let body = response.into_body().collect().await.unwrap().to_bytes();
    assert_eq!(&body[..], metadata.document());

    let response = stack.oneshot(get_with("/mcp", None)).await.unwrap();
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(
        challenge(response.headers()),
        format!(r#"Bearer realm="meingpt", resource_metadata="{METADATA_URL}""#)
    );
}

#[tokio::test]
async fn every_challenge_names_the_resource_metadata_and_scope_refusals_name_the_scopes() {
    let world = World::start().await;
    let app = world.app();
    let bound = world.access_token(json!(RESOURCE), "files:read");
    let cases = [
        (
            get_with("/me", None),
            StatusCode::UNAUTHORIZED,
            format!(r#"Bearer realm="meingpt", resource_metadata="{METADATA_URL}""#),
        ),
        (
            get_with("/me", Some("not.a.token")),
            StatusCode::UNAUTHORIZED,
            format!(
                r#"Bearer realm="meingpt", error="invalid_token", error_description="{MALFORMED}", resource_metadata="{METADATA_URL}""#
            ),
        ),
        (
            get_with("/me", Some("")),
            StatusCode::BAD_REQUEST,
            format!(
                r#"Bearer realm="meingpt", error="invalid_request", error_description="the bearer token is empty", resource_metadata="{METADATA_URL}""#
            ),
        ),
        (
            get_with("/share", Some(&bound)),
            StatusCode::FORBIDDEN,
            format!(
                r#"Bearer realm="meingpt", error="insufficient_scope", error_description="the user lacks the role or team this resource requires", scope="files:read files:share", resource_metadata="{METADATA_URL}""#
            ),
        ),
        (
            get_with("/admin", Some(&bound)),
            StatusCode::FORBIDDEN,
            format!(
                r#"Bearer realm="meingpt", error="insufficient_scope", error_description="the user lacks the role or team this resource requires", resource_metadata="{METADATA_URL}""#
            ),
        ),
    ];
    for (request, status, expected) in cases {
        let uri = request.uri().clone();
        let (seen, headers, _) = send(&app, request).await;
        assert_eq!(seen, status, "{uri}");
        assert_eq!(challenge(&headers), expected, "{uri}");
    }
    let (status, _, body) = send(&app, get_with("/files", Some(&bound))).await;
    assert_eq!((status, body.as_str()), (StatusCode::OK, "files"));

    // Any one of the scopes would be enough: the first is named.
    let unscoped = world.access_token(json!(RESOURCE), "other");
    let (status, headers, _) = send(&app, get_with("/either", Some(&unscoped))).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert!(
        challenge(&headers).contains(r#", scope="files:read", "#),
        "{}",
        challenge(&headers)
    );
}

#[tokio::test]
async fn a_guard_names_the_scopes_it_is_told_and_leaves_out_what_is_no_scope_token() {
    let issuer = MockIssuer::start().await;
    let auth = issuer.auth().build().unwrap();
    let app = Router::new()
        .route(
            "/custom",
            get(|| async { "custom" }).route_layer(
                require_user(|user| user.has_scope("mcp:tools")).challenge_scope([
                    "mcp:tools",
                    "bad\"scope",
                    "two words",
                    "mcp:more",
                ]),
            ),
        )
        .route(
            "/quoted",
            get(|| async { "never" }).route_layer(require_scope("a\"b")),
        )
        .layer(auth.layer());
    let token = issuer.token().sign();

    // Without a protected resource: no resource_metadata, the scope still.
    let (status, headers, _) = send(&app, get_with("/custom", Some(&token))).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert_eq!(
        challenge(&headers),
        r#"Bearer realm="meingpt", error="insufficient_scope", error_description="the user lacks the role or team this resource requires", scope="mcp:tools mcp:more""#
    );
    let (status, headers, _) = send(&app, get_with("/quoted", Some(&token))).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert_eq!(
        challenge(&headers),
        r#"Bearer realm="meingpt", error="insufficient_scope", error_description="the user lacks the role or team this resource requires""#
    );
}

#[tokio::test]
async fn a_rejection_hook_and_the_grpc_shape_keep_the_challenge_parameters() {
    let world = World::start().await;
    let layer = world.auth.layer().render_rejections_with(|rejection| {
        assert_eq!(rejection.resource_metadata(), Some(METADATA_URL));
        rejection.response("text/plain", format!("refused: {}", rejection.error()))
    });
    let app = Router::new()
        .route(
            "/files",
            get(|| async { "files" }).route_layer(require_scope("files:read")),
        )
        .layer(layer);
    let token = world.access_token(json!(RESOURCE), "other");
    let (status, headers, body) = send(&app, get_with("/files", Some(&token))).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert_eq!(
        body,
        "refused: the user lacks the role or team this resource requires"
    );
    assert!(
        challenge(&headers).ends_with(&format!(
            r#", scope="files:read", resource_metadata="{METADATA_URL}""#
        )),
        "{}",
        challenge(&headers)
    );

    let grpc = Router::new()
        .route(
            "/demo.Files/List",
            axum::routing::post(|| async { "never" }).route_layer(require_scope("files:read")),
        )
        .layer(world.auth.layer());
    let request = Request::post("/demo.Files/List")
        .header(header::CONTENT_TYPE, "application/grpc")
        .header(header::AUTHORIZATION, format!("Bearer {token}"))
        .body(Body::empty())
        .unwrap();
    let (status, headers, _) = send(&grpc, request).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(headers["grpc-status"], "7");
    assert!(
        challenge(&headers).ends_with(&format!(
            r#", scope="files:read", resource_metadata="{METADATA_URL}""#
        )),
        "{}",
        challenge(&headers)
    );
}

#[tokio::test]
async fn a_layer_names_the_resource_it_guards_when_one_authenticator_serves_several() {
    let world = World::start().await;
    let other = world
        .auth
        .describe_resource(ProtectedResource::new(
            "https://tools.example.com/other/mcp",
        ))
        .unwrap();
    assert_eq!(
        serde_json::from_slice::<Value>(other.document()).unwrap()["authorization_servers"],
        json!([world.oauth.issuer(), world.meingpt.issuer()])
    );
    let app = Router::new()
        .route("/other/mcp", get(|| async { "other" }))
        .layer(world.auth.layer().resource_metadata(other.clone()))
        .merge(other.router());
    let (status, headers, _) = send(&app, get_with("/other/mcp", None)).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(
        challenge(&headers),
        r#"Bearer realm="meingpt", resource_metadata="https://tools.example.com/.well-known/oauth-protected-resource/other/mcp""#
    );
    let (status, _, _) = send(
        &app,
        get_with("/.well-known/oauth-protected-resource/other/mcp", None),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
}

#[tokio::test]
async fn a_bound_issuer_accepts_only_tokens_whose_audience_contains_the_resource() {
    let world = World::start().await;
    let app = world.app();
    let accepted = [
        json!(RESOURCE),
        json!(["https://other.example.com", RESOURCE]),
    ];
    for aud in accepted {
        let token = world.access_token(aud.clone(), "");
        let (status, _, body) = send(&app, get_with("/me", Some(&token))).await;
        assert_eq!((status, body.as_str()), (StatusCode::OK, "ci-bot"), "{aud}");
    }
    // Another resource, a near miss, the authorization server's default
    // audience: all passed through from elsewhere.
    let refused = [
        json!("https://other.example.com/mcp"),
        json!(format!("{RESOURCE}/")),
        json!("https://MCP.example.com/mcp"),
        json!("oauth"),
    ];
    for aud in refused {
        let token = world.access_token(aud.clone(), "");
        let (status, headers, _) = send(&app, get_with("/me", Some(&token))).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{aud}");
        assert!(
            challenge(&headers).contains(&format!(r#"error_description="{WRONG_AUDIENCE}""#)),
            "{aud}: {}",
            challenge(&headers)
        );
    }
}

#[tokio::test]
async fn meingpt_tokens_keep_their_organization_audience_beside_a_bound_issuer() {
    let world = World::start().await;
    let member = world.meingpt.token().sub("chat-user").sign();
    let user = world.auth.verify(&member).await.unwrap();
    assert_eq!(user.sub(), "chat-user");
    assert_eq!(user.organization_id(), "org-test");
    assert!(user.is_meingpt());

    // A meinGPT token for the resource instead of the organization.
    let for_resource = world.meingpt.token().audience(RESOURCE).sign();
    assert!(world.auth.verify(&for_resource).await.is_err());

    let bound = world.access_token(json!(RESOURCE), "");
    let user = world.auth.verify(&bound).await.unwrap();
    assert_eq!(user.organization_id(), RESOURCE);
    assert!(!user.is_meingpt());
}

#[tokio::test]
async fn resource_settings_that_cannot_work_are_refused_naming_the_setting() {
    let oauth = MockIssuer::start().await;
    let unbound = MeinGptAuth::oidc(oauth.issuer())
        .resource_audience()
        .build();
    assert_eq!(unbound.unwrap_err().setting(), "resource_audience");

    let with_audience = MeinGptAuth::oidc(oauth.issuer())
        .audience("api://other")
        .resource_audience()
        .protected_resource(ProtectedResource::new(RESOURCE))
        .build();
    assert_eq!(with_audience.unwrap_err().setting(), "audience");

    let meingpt = oauth
        .auth()
        .protected_resource(ProtectedResource::new(RESOURCE))
        .resource_audience()
        .build();
    assert_eq!(meingpt.unwrap_err().setting(), "resource_audience");

    let later = MeinGptAuth::from_issuers([
        MeinGptAuth::builder().organization("org"),
        MeinGptAuth::oidc(oauth.issuer())
            .audience("api")
            .protected_resource(ProtectedResource::new(RESOURCE)),
    ]);
    assert_eq!(later.unwrap_err().setting(), "protected_resource");

    let bad = MeinGptAuth::builder()
        .organization("org")
        .protected_resource(ProtectedResource::new("http://mcp.example.com/mcp"))
        .build();
    let error = bad.unwrap_err();
    assert_eq!(error.setting(), "resource");
    assert_eq!(
        error.to_string(),
        "resource is invalid: plain http:// is only allowed for loopback hosts; use https://"
    );
}

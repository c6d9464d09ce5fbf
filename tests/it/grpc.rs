//! gRPC with tonic: the example's server (`examples/grpc/`) behind the auth
//! layer and a role guard, driven by a tonic client over HTTP/2 on
//! loopback. Refusals follow the gRPC protocol (HTTP 200, trailers-only,
//! `grpc-status` and `grpc-message` in the headers).

#[path = "../../examples/grpc/app.rs"]
mod app;
#[path = "../../examples/grpc/proto.rs"]
mod proto;

use std::convert::Infallible;

use bytes::Bytes;
use http::{Request, Response, StatusCode};
use http_body_util::{BodyExt, Full};
use meingpt_auth::testing::MockIssuer;
use meingpt_auth::{AuthError, InvalidToken};
use tonic::Code;
use tonic::metadata::MetadataValue;
use tonic::transport::Channel;
use tower::{ServiceBuilder, ServiceExt, service_fn};

use proto::{DemoClient, ReportRequest, WhoAmIRequest};

/// Starts the example's server with `auth`; returns a client connected to it.
async fn start(issuer: &MockIssuer) -> DemoClient {
    let auth = issuer.auth().build().unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(app::serve(auth, listener));
    let channel = Channel::from_shared(format!("http://{addr}"))
        .unwrap()
        .connect()
        .await
        .unwrap();
    DemoClient::new(channel)
}

fn with_token<T>(message: T, token: &str) -> tonic::Request<T> {
    let mut request = tonic::Request::new(message);
    let value: MetadataValue<_> = format!("Bearer {token}").parse().unwrap();
    request.metadata_mut().insert("authorization", value);
    request
}

#[tokio::test]
async fn a_call_without_a_token_is_unauthenticated_with_a_grpc_message() {
    let issuer = MockIssuer::start().await;
    let mut client = start(&issuer).await;

    let status = client
        .who_am_i(tonic::Request::new(WhoAmIRequest {}))
        .await
        .unwrap_err();

    assert_eq!(status.code(), Code::Unauthenticated);
    assert_eq!(status.message(), "a bearer token is required");
    assert_eq!(
        status.metadata().get("www-authenticate").unwrap(),
        "Bearer realm=\"meingpt\""
    );
    assert_eq!(issuer.fetch_count(), 0);
}

#[tokio::test]
async fn a_member_on_the_admin_service_is_permission_denied() {
    let issuer = MockIssuer::start().await;
    let mut client = start(&issuer).await;
    let member = issuer.token().sub("m-7").role("member").sign();

    // The member may use the profile service…
    let user = client
        .who_am_i(with_token(WhoAmIRequest {}, &member))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(user.sub, "m-7");
    assert_eq!(user.role, "member");

    // …but not the admin one.
    let status = client
        .report(with_token(ReportRequest {}, &member))
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::PermissionDenied);
    assert_eq!(
        status.message(),
        "the user lacks the role or team this resource requires"
    );
    assert!(
        status
            .metadata()
            .get("www-authenticate")
            .unwrap()
            .to_str()
            .unwrap()
            .contains("error=\"insufficient_scope\"")
    );
    assert_eq!(issuer.fetch_count(), 1);
}

#[tokio::test]
async fn an_admin_call_succeeds_and_the_handler_sees_the_user() {
    let issuer = MockIssuer::start().await;
    let mut client = start(&issuer).await;
    let admin = issuer
        .token()
        .sub("boss")
        .role("admin")
        .team("t1", "Engineering")
        .team("t2", "Sales")
        .sign();

    let report = client
        .report(with_token(ReportRequest {}, &admin))
        .await
        .unwrap()
        .into_inner();

    assert_eq!(report.requested_by, "boss");
    assert_eq!(report.teams_of_requester, 2);
}

#[tokio::test]
async fn a_bad_token_is_unauthenticated_and_names_the_reason() {
    let issuer = MockIssuer::start().await;
    let mut client = start(&issuer).await;
    let expired = issuer.token().expires_at(1_000_000).sign();

    let status = client
        .who_am_i(with_token(WhoAmIRequest {}, &expired))
        .await
        .unwrap_err();

    assert_eq!(status.code(), Code::Unauthenticated);
    let expected = AuthError::InvalidToken(InvalidToken::Expired);
    assert_eq!(status.message(), expected.description());
}

/// The raw answer of the layer to a tokenless request with `content_type`.
async fn tokenless(content_type: Option<&str>) -> Response<Bytes> {
    let issuer = MockIssuer::start().await;
    let service = ServiceBuilder::new()
        .layer(issuer.auth().build().unwrap().layer())
        .service(service_fn(|_: Request<Full<Bytes>>| async {
            Ok::<_, Infallible>(Response::new(Full::new(Bytes::from("inner"))))
        }));
    let mut request = Request::post("/demo.Profile/WhoAmI");
    if let Some(content_type) = content_type {
        request = request.header("content-type", content_type);
    }
    let response = service
        .oneshot(request.body(Full::default()).unwrap())
        .await
        .unwrap();
    let (parts, body) = response.into_parts();
    Response::from_parts(parts, body.collect().await.unwrap().to_bytes())
}

#[tokio::test]
async fn grpc_content_types_get_the_grpc_shape_and_others_rfc_6750() {
    for content_type in ["application/grpc", "application/grpc+proto"] {
        let response = tokenless(Some(content_type)).await;
        assert_eq!(response.status(), StatusCode::OK, "{content_type}");
        assert_eq!(response.headers()["content-type"], "application/grpc");
        assert_eq!(response.headers()["grpc-status"], "16");
        assert_eq!(
            response.headers()["grpc-message"],
            "a bearer token is required"
        );
        assert!(response.body().is_empty());
    }
    for content_type in [None, Some("application/json")] {
        let response = tokenless(content_type).await;
        assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
        assert_eq!(response.headers()["content-type"], "application/json");
        assert!(response.headers().get("grpc-status").is_none());
        let body: serde_json::Value = serde_json::from_slice(response.body()).unwrap();
        assert_eq!(body["error"], "unauthorized");
    }
}

//! The layer and the guards applied directly to services that are not axum
//! routers: rmcp's `StreamableHttpService` (a boxed body) and a
//! `tower::service_fn` answering `http_body_util::Full<Bytes>`, each served
//! by hyper on loopback.

use std::collections::HashMap;
use std::convert::Infallible;
use std::sync::Arc;

use bytes::Bytes;
use http::{HeaderName, HeaderValue, Request, Response};
use http_body_util::Full;
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use hyper_util::service::TowerToHyperService;
use meingpt_auth::testing::MockIssuer;
use meingpt_auth::{MeinGptUser, Role, require_role};
use rmcp::handler::server::router::tool::ToolRouter;
use rmcp::handler::server::tool::Extension;
use rmcp::model::{CallToolRequestParams, ClientConfig, ServerCapabilities, ServerConfig};
use rmcp::transport::StreamableHttpClientTransport;
use rmcp::transport::streamable_http_client::StreamableHttpClientTransportConfig;
use rmcp::transport::streamable_http_server::session::local::LocalSessionManager;
use rmcp::transport::streamable_http_server::{StreamableHttpServerConfig, StreamableHttpService};
use rmcp::{ErrorData, ServerHandler, ServiceExt as _, tool, tool_handler, tool_router};
use tower::{ServiceBuilder, service_fn};

use crate::common::get_with;

type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// Serves any Tower service on 127.0.0.1 with hyper; returns its base URL.
pub async fn serve_service<S, B>(service: S) -> String
where
    S: tower::Service<Request<Incoming>, Response = Response<B>> + Clone + Send + Sync + 'static,
    S::Future: Send + 'static,
    S::Error: Into<BoxError>,
    B: http_body::Body + Send + 'static,
    B::Data: Send,
    B::Error: Into<BoxError>,
{
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                return;
            };
            let service = TowerToHyperService::new(service.clone());
            tokio::spawn(async move {
                let _ = auto::Builder::new(TokioExecutor::new())
                    .serve_connection(TokioIo::new(stream), service)
                    .await;
            });
        }
    });
    format!("http://{addr}")
}

#[tokio::test]
async fn layer_and_guard_apply_directly_to_a_service_fn_answering_full_bytes() {
    let issuer = MockIssuer::start().await;
    let auth = issuer.auth().build().unwrap();
    let service = ServiceBuilder::new()
        .layer(auth.layer())
        .layer(require_role(Role::Admin))
        .service(service_fn(|request: Request<Incoming>| async move {
            let user = request.extensions().get::<MeinGptUser>().unwrap();
            let body = Full::new(Bytes::from(format!("hi {}", user.sub())));
            Ok::<_, Infallible>(Response::new(body))
        }));
    let base = serve_service(service).await;

    let admin = issuer.token().sub("boss").role("admin").sign();
    let seen = get_with(&base, &[("authorization", &format!("Bearer {admin}"))]).await;
    assert_eq!(seen.status, 200);
    assert_eq!(seen.body, "hi boss");

    let member = issuer.token().role("member").sign();
    let seen = get_with(&base, &[("authorization", &format!("Bearer {member}"))]).await;
    assert_eq!(seen.status, 403);
    assert!(
        seen.www_authenticate
            .as_deref()
            .unwrap()
            .starts_with("Bearer realm=\"meingpt\", error=\"insufficient_scope\"")
    );
    assert_eq!(seen.json()["error"], "insufficient_scope");

    let seen = get_with(&base, &[]).await;
    assert_eq!(seen.status, 401);
    assert_eq!(
        seen.www_authenticate.as_deref(),
        Some("Bearer realm=\"meingpt\"")
    );
    assert_eq!(seen.json()["error"], "unauthorized");
    assert_eq!(issuer.fetch_count(), 1);
}

/// An MCP server whose one tool answers with the caller's `sub`.
#[derive(Debug, Clone)]
struct WhoAmI {
    tool_router: ToolRouter<Self>,
}

#[tool_router]
impl WhoAmI {
    fn new() -> Self {
        Self {
            tool_router: Self::tool_router(),
        }
    }

    #[tool(description = "The caller's user id.")]
    async fn whoami(
        &self,
        Extension(parts): Extension<http::request::Parts>,
    ) -> Result<String, ErrorData> {
        let user = parts.extensions.get::<MeinGptUser>().ok_or_else(|| {
            ErrorData::internal_error("no authenticated user on the request", None)
        })?;
        Ok(user.sub().to_owned())
    }
}

#[tool_handler(router = self.tool_router)]
impl ServerHandler for WhoAmI {
    fn get_info(&self) -> ServerConfig {
        ServerConfig::new(ServerCapabilities::builder().enable_tools().build())
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn layer_applies_directly_to_rmcps_streamable_http_service() {
    let issuer = MockIssuer::start().await;
    let auth = issuer.auth().build().unwrap();
    let mcp: StreamableHttpService<WhoAmI, LocalSessionManager> = StreamableHttpService::new(
        || Ok(WhoAmI::new()),
        Arc::default(),
        StreamableHttpServerConfig::default(),
    );
    let base = serve_service(ServiceBuilder::new().layer(auth.layer()).service(mcp)).await;

    // Without a token the MCP handshake never reaches rmcp.
    let seen = get_with(&base, &[("accept", "text/event-stream")]).await;
    assert_eq!(seen.status, 401);
    assert_eq!(
        seen.www_authenticate.as_deref(),
        Some("Bearer realm=\"meingpt\"")
    );

    // With one, rmcp's own client talks to the tool, which sees the user.
    let token = issuer.token().sub("mcp-user").sign();
    let headers = HashMap::from([(
        HeaderName::from_static("x-meingpt-jwt"),
        HeaderValue::from_str(&token).unwrap(),
    )]);
    let transport = StreamableHttpClientTransport::from_config(
        StreamableHttpClientTransportConfig::with_uri(base.as_str()).custom_headers(headers),
    );
    let client = ClientConfig::default().serve(transport).await.unwrap();
    let result = client
        .call_tool(CallToolRequestParams::new("whoami"))
        .await
        .unwrap();
    let text: Vec<String> = result
        .content
        .iter()
        .filter_map(|block| block.as_text().map(|text| text.text.clone()))
        .collect();
    assert_eq!(text, ["mcp-user"]);
    assert_eq!(issuer.fetch_count(), 1);
    client.cancel().await.unwrap();
}

/// Polls `future` once, with a waker that does nothing.
fn poll_once<F: std::future::Future>(future: F) -> std::task::Poll<F::Output> {
    let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
    std::pin::pin!(future).poll(&mut cx)
}

#[tokio::test]
async fn a_remembered_token_a_fresh_one_and_a_missing_one_are_answered_on_the_first_poll() {
    use tower::{Service, ServiceExt as _};

    let issuer = MockIssuer::start().await;
    let auth = issuer.auth().build().unwrap();
    let mut service = ServiceBuilder::new()
        .layer(auth.layer())
        .service(service_fn(|request: Request<()>| async move {
            let user = request.extensions().get::<MeinGptUser>().unwrap();
            Ok::<_, Infallible>(Response::new(Full::new(Bytes::from(user.sub().to_owned()))))
        }));
    let token = issuer.token().sub("mcp-user").sign();
    let with_token = || {
        Request::get("/")
            .header("x-meingpt-jwt", &token)
            .body(())
            .unwrap()
    };

    // The first time, the token is verified: the keys are fetched first.
    let first = service.ready().await.unwrap().call(with_token());
    assert!(poll_once(first).is_pending());
    let response = service
        .ready()
        .await
        .unwrap()
        .call(with_token())
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(issuer.fetch_count(), 1);

    // Remembered: decided without waiting for anything.
    let again = service.ready().await.unwrap().call(with_token());
    let std::task::Poll::Ready(Ok(response)) = poll_once(again) else {
        panic!("a remembered token had to wait");
    };
    assert_eq!(response.status(), 200);
    // A token never seen, whose key is cached: verified without waiting.
    let fresh = issuer.token().sub("other-user").sign();
    let fresh = service.ready().await.unwrap().call(
        Request::get("/")
            .header("x-meingpt-jwt", fresh)
            .body(())
            .unwrap(),
    );
    let std::task::Poll::Ready(Ok(response)) = poll_once(fresh) else {
        panic!("a fresh token whose key is cached had to wait");
    };
    assert_eq!(response.status(), 200);
    let anonymous = service
        .ready()
        .await
        .unwrap()
        .call(Request::get("/").body(()).unwrap());
    let std::task::Poll::Ready(Ok(response)) = poll_once(anonymous) else {
        panic!("a request without a token had to wait");
    };
    assert_eq!(response.status(), 401);
    assert_eq!(issuer.fetch_count(), 1);
}

//! Serving the metadata document: [`ResourceMetadata::router`] for axum,
//! and [`ServeResourceMetadata`], middleware that answers the well-known
//! paths in front of any Tower service.

use std::task::{Context, Poll};

use bytes::Bytes;
use http::{HeaderValue, Method, Request, Response, StatusCode, header};
use tower_layer::Layer;
use tower_service::Service;

use super::{MAX_AGE_SECONDS, ResourceMetadata};
use crate::body::{AuthBody, ResponseFuture};

const ALLOW: &str = "GET, HEAD, OPTIONS";

impl ResourceMetadata {
    /// The answer to `method` on one of the document's paths: the document
    /// for `GET` (no body for `HEAD`), a CORS preflight answer for
    /// `OPTIONS` (browser-based clients read the document cross-origin),
    /// `405` otherwise. Public: no authentication is asked for.
    pub fn answer(&self, method: &Method) -> Response<Bytes> {
        let (status, body) = match *method {
            Method::GET => (StatusCode::OK, self.document_bytes()),
            Method::HEAD => (StatusCode::OK, Bytes::new()),
            Method::OPTIONS => (StatusCode::NO_CONTENT, Bytes::new()),
            _ => (StatusCode::METHOD_NOT_ALLOWED, Bytes::new()),
        };
        let mut response = Response::new(body);
        *response.status_mut() = status;
        let headers = response.headers_mut();
        headers.insert(
            header::ACCESS_CONTROL_ALLOW_ORIGIN,
            HeaderValue::from_static("*"),
        );
        match status {
            StatusCode::OK => {
                headers.insert(
                    header::CONTENT_TYPE,
                    HeaderValue::from_static("application/json"),
                );
                headers.insert(
                    header::CACHE_CONTROL,
                    HeaderValue::from_str(&format!("public, max-age={MAX_AGE_SECONDS}"))
                        .expect("a valid header value"),
                );
                if *method == Method::HEAD {
                    headers.insert(
                        header::CONTENT_LENGTH,
                        HeaderValue::from(self.document().len()),
                    );
                }
            }
            StatusCode::NO_CONTENT => {
                headers.insert(
                    header::ACCESS_CONTROL_ALLOW_METHODS,
                    HeaderValue::from_static(ALLOW),
                );
                // The MCP SDKs send their protocol version with the request.
                headers.insert(
                    header::ACCESS_CONTROL_ALLOW_HEADERS,
                    HeaderValue::from_static("mcp-protocol-version"),
                );
                headers.insert(header::ALLOW, HeaderValue::from_static(ALLOW));
            }
            _ => {
                headers.insert(header::ALLOW, HeaderValue::from_static(ALLOW));
            }
        }
        response
    }

    /// Whether `path` is one the document is served at.
    pub fn serves(&self, path: &str) -> bool {
        self.paths().iter().any(|served| served == path)
    }

    /// An axum router that serves the document at its [paths](Self::paths),
    /// to [`merge`](axum::Router::merge) outside the auth layer: the
    /// document is public.
    #[cfg(feature = "axum")]
    pub fn router<S>(&self) -> axum::Router<S>
    where
        S: Clone + Send + Sync + 'static,
    {
        let mut router = axum::Router::new();
        for path in self.paths() {
            let metadata = self.clone();
            router = router.route(
                path,
                axum::routing::any(move |method: Method| {
                    let response = metadata.answer(&method).map(axum::body::Body::from);
                    std::future::ready(response)
                }),
            );
        }
        router
    }

    /// Middleware that answers the document's paths in front of any Tower
    /// service and passes every other request on (see
    /// [`ServeResourceMetadata`]). Put it outside the auth layer.
    pub fn layer(&self) -> ServeResourceMetadataLayer {
        ServeResourceMetadataLayer {
            metadata: self.clone(),
        }
    }
}

/// Applies [`ServeResourceMetadata`] to a service. See the
/// [module docs](super).
#[derive(Debug, Clone)]
pub struct ServeResourceMetadataLayer {
    metadata: ResourceMetadata,
}

impl ServeResourceMetadataLayer {
    /// A layer serving `metadata`.
    pub fn new(metadata: ResourceMetadata) -> Self {
        Self { metadata }
    }
}

impl<S> Layer<S> for ServeResourceMetadataLayer {
    type Service = ServeResourceMetadata<S>;

    fn layer(&self, inner: S) -> Self::Service {
        ServeResourceMetadata {
            inner,
            metadata: self.metadata.clone(),
        }
    }
}

/// Middleware that answers requests for the protected resource metadata
/// itself and passes every other request to the inner service. See the
/// [module docs](super).
#[derive(Debug, Clone)]
pub struct ServeResourceMetadata<S> {
    inner: S,
    metadata: ResourceMetadata,
}

impl<S> ServeResourceMetadata<S> {
    /// Wraps `inner`, serving `metadata` in front of it.
    pub fn new(inner: S, metadata: ResourceMetadata) -> Self {
        Self { inner, metadata }
    }

    /// The inner service.
    pub fn get_ref(&self) -> &S {
        &self.inner
    }

    /// The inner service, mutably.
    pub fn get_mut(&mut self) -> &mut S {
        &mut self.inner
    }

    /// Unwraps the inner service.
    pub fn into_inner(self) -> S {
        self.inner
    }
}

impl<S, ReqBody, ResBody> Service<Request<ReqBody>> for ServeResourceMetadata<S>
where
    S: Service<Request<ReqBody>, Response = Response<ResBody>>,
{
    type Response = Response<AuthBody<ResBody>>;
    type Error = S::Error;
    type Future = ResponseFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request<ReqBody>) -> Self::Future {
        if self.metadata.serves(request.uri().path()) {
            return ResponseFuture::answered(self.metadata.answer(request.method()));
        }
        ResponseFuture::inner(self.inner.call(request))
    }
}

//! The example's gRPC API, written by hand in the shape `tonic-build`
//! generates, so that building needs no `protoc`:
//!
//! ```proto
//! syntax = "proto3";
//! package demo;
//!
//! // Any signed-in user.
//! service Profile { rpc WhoAmI (WhoAmIRequest) returns (User); }
//! // Organization admins only.
//! service Admin { rpc Report (ReportRequest) returns (Report); }
//!
//! message WhoAmIRequest {}
//! message User { string sub = 1; string role = 2; string organization_id = 3; }
//! message ReportRequest {}
//! message Report { string requested_by = 1; uint32 teams_of_requester = 2; }
//! ```

// Each binary that includes this module uses a different part of it.
#![allow(dead_code)]

use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use http_body::Body as HttpBody;
use tonic::body::Body;
use tonic::codegen::Service;
use tonic::server::{Grpc, NamedService, UnaryService};
use tonic::{Request, Response, Status};
use tonic_prost::ProstCodec;

#[derive(Clone, PartialEq, prost::Message)]
pub struct WhoAmIRequest {}

#[derive(Clone, PartialEq, prost::Message)]
pub struct User {
    #[prost(string, tag = "1")]
    pub sub: String,
    #[prost(string, tag = "2")]
    pub role: String,
    #[prost(string, tag = "3")]
    pub organization_id: String,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct ReportRequest {}

#[derive(Clone, PartialEq, prost::Message)]
pub struct Report {
    #[prost(string, tag = "1")]
    pub requested_by: String,
    #[prost(uint32, tag = "2")]
    pub teams_of_requester: u32,
}

type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send + 'static>>;
type Handler<Req, Res> =
    Arc<dyn Fn(Request<Req>) -> BoxFuture<Result<Response<Res>, Status>> + Send + Sync>;

/// A gRPC service with one unary method, `/{NAME}/{method}`.
pub struct UnaryServer<Req, Res> {
    path: &'static str,
    handler: Handler<Req, Res>,
}

impl<Req, Res> Clone for UnaryServer<Req, Res> {
    fn clone(&self) -> Self {
        Self {
            path: self.path,
            handler: self.handler.clone(),
        }
    }
}

struct Method<Req, Res>(Handler<Req, Res>);

impl<Req, Res> UnaryService<Req> for Method<Req, Res> {
    type Response = Res;
    type Future = BoxFuture<Result<Response<Res>, Status>>;

    fn call(&mut self, request: Request<Req>) -> Self::Future {
        (self.0)(request)
    }
}

impl<Req, Res, B> Service<http::Request<B>> for UnaryServer<Req, Res>
where
    Req: prost::Message + Default + Send + 'static,
    Res: prost::Message + Send + 'static,
    B: HttpBody + Send + 'static,
    B::Error: Into<tonic::codegen::StdError> + Send + 'static,
{
    type Response = http::Response<Body>;
    type Error = Infallible;
    type Future = BoxFuture<Result<Self::Response, Infallible>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: http::Request<B>) -> Self::Future {
        if request.uri().path() != self.path {
            return Box::pin(async { Ok(Status::unimplemented("no such method").into_http()) });
        }
        let method = Method(self.handler.clone());
        Box::pin(async move {
            let mut grpc = Grpc::new(ProstCodec::<Res, Req>::default());
            Ok(grpc.unary(method, request).await)
        })
    }
}

pub mod profile_server {
    use super::*;

    /// The `demo.Profile` service.
    pub type ProfileServer = UnaryServer<WhoAmIRequest, User>;

    impl NamedService for ProfileServer {
        const NAME: &'static str = "demo.Profile";
    }

    pub fn new<F, Fut>(who_am_i: F) -> ProfileServer
    where
        F: Fn(Request<WhoAmIRequest>) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<Response<User>, Status>> + Send + 'static,
    {
        UnaryServer {
            path: "/demo.Profile/WhoAmI",
            handler: Arc::new(move |request| Box::pin(who_am_i(request))),
        }
    }
}

pub mod admin_server {
    use super::*;

    /// The `demo.Admin` service.
    pub type AdminServer = UnaryServer<ReportRequest, Report>;

    impl NamedService for AdminServer {
        const NAME: &'static str = "demo.Admin";
    }

    pub fn new<F, Fut>(report: F) -> AdminServer
    where
        F: Fn(Request<ReportRequest>) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<Response<Report>, Status>> + Send + 'static,
    {
        UnaryServer {
            path: "/demo.Admin/Report",
            handler: Arc::new(move |request| Box::pin(report(request))),
        }
    }
}

/// A client for both services.
pub struct DemoClient {
    inner: tonic::client::Grpc<tonic::transport::Channel>,
}

impl DemoClient {
    pub fn new(channel: tonic::transport::Channel) -> Self {
        Self {
            inner: tonic::client::Grpc::new(channel),
        }
    }

    pub async fn who_am_i(
        &mut self,
        request: Request<WhoAmIRequest>,
    ) -> Result<Response<User>, Status> {
        self.unary(request, "/demo.Profile/WhoAmI").await
    }

    pub async fn report(
        &mut self,
        request: Request<ReportRequest>,
    ) -> Result<Response<Report>, Status> {
        self.unary(request, "/demo.Admin/Report").await
    }

    async fn unary<Req, Res>(
        &mut self,
        request: Request<Req>,
        path: &'static str,
    ) -> Result<Response<Res>, Status>
    where
        Req: prost::Message + Send + Sync + 'static,
        Res: prost::Message + Default + Send + Sync + 'static,
    {
        self.inner
            .ready()
            .await
            .map_err(|e| Status::unavailable(format!("not ready: {e}")))?;
        let path = http::uri::PathAndQuery::from_static(path);
        self.inner
            .unary(request, path, ProstCodec::<Req, Res>::default())
            .await
    }
}

//! The gRPC server: `demo.Profile` for any signed-in user, `demo.Admin`
//! for organization admins, behind `meingpt-auth`.

use std::task::{Context, Poll};

use meingpt_auth::guard::Guard;
use meingpt_auth::{MeinGptAuth, MeinGptUser, Role, require_role};
use tokio::net::TcpListener;
use tonic::codegen::Service;
use tonic::codegen::tokio_stream::wrappers::TcpListenerStream;
use tonic::server::NamedService;
use tonic::transport::Server;
use tonic::{Request, Response, Status};
use tower_layer::Layer;

use super::proto::{Report, ReportRequest, User, WhoAmIRequest, admin_server, profile_server};

/// The user the auth layer verified for this call.
fn caller<T>(request: &Request<T>) -> Result<MeinGptUser, Status> {
    request
        .extensions()
        .get::<MeinGptUser>()
        .cloned()
        // Only if the server forgot `.layer(auth.layer())`.
        .ok_or_else(|| Status::internal("no authenticated user: is the auth layer applied?"))
}

async fn who_am_i(request: Request<WhoAmIRequest>) -> Result<Response<User>, Status> {
    let user = caller(&request)?;
    Ok(Response::new(User {
        sub: user.sub().to_owned(),
        role: user
            .role()
            .map(|role| role.as_str().to_owned())
            .unwrap_or_default(),
        organization_id: user.organization_id().to_owned(),
    }))
}

async fn report(request: Request<ReportRequest>) -> Result<Response<Report>, Status> {
    let user = caller(&request)?;
    Ok(Response::new(Report {
        requested_by: user.sub().to_owned(),
        teams_of_requester: u32::try_from(user.teams().len()).unwrap_or(u32::MAX),
    }))
}

/// A service behind a guard, registered under the service's own name
/// (tonic routes by it).
#[derive(Clone)]
pub struct Guarded<S>(Guard<S>);

impl<S: NamedService> NamedService for Guarded<S> {
    const NAME: &'static str = S::NAME;
}

impl<S, R> Service<R> for Guarded<S>
where
    Guard<S>: Service<R>,
{
    type Response = <Guard<S> as Service<R>>::Response;
    type Error = <Guard<S> as Service<R>>::Error;
    type Future = <Guard<S> as Service<R>>::Future;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.0.poll_ready(cx)
    }

    fn call(&mut self, request: R) -> Self::Future {
        self.0.call(request)
    }
}

/// Serves both services on `listener`: every call needs a valid token
/// (`authorization: Bearer …` or `x-meingpt-jwt` metadata), `demo.Admin`
/// an admin's.
pub async fn serve(
    auth: MeinGptAuth,
    listener: TcpListener,
) -> Result<(), tonic::transport::Error> {
    let admin_only = Guarded(require_role(Role::Admin).layer(admin_server::new(report)));
    Server::builder()
        .layer(auth.layer())
        .add_service(profile_server::new(who_am_i))
        .add_service(admin_only)
        .serve_with_incoming(TcpListenerStream::new(listener))
        .await
}

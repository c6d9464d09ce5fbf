//! Routes that are OAuth protected resources (RFC 9728) for MCP clients
//! and other standard OAuth clients: the metadata documents the gateway
//! answers at their well-known URLs ([`WellKnown`]), and the audience
//! binding of a route ([`ResourceAudienceLayer`]). The challenges that name
//! the document and the scopes come from the crate's auth layer and guard,
//! set up in the route's stack.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use http::{Request, Response};
use meingpt_auth::error::Challenge;
use meingpt_auth::resource::WELL_KNOWN_PATH;
use meingpt_auth::{
    AuthError, GuardLayer, InvalidToken, MeinGptUser, ResourceMetadata, require_user,
};
use tower::{Layer, Service};

use crate::answer::Body;

/// The documents the gateway serves, by path: the authenticator's own
/// resource (`MCP_RESOURCE_URL`) first, then each route's in route order;
/// where two resources share a path (the root well-known URL), the first
/// answers.
#[derive(Debug, Clone, Default)]
pub(crate) struct WellKnown {
    documents: Vec<(String, ResourceMetadata)>,
}

impl WellKnown {
    pub(crate) fn new<'a>(resources: impl IntoIterator<Item = &'a ResourceMetadata>) -> Self {
        let mut documents: Vec<(String, ResourceMetadata)> = Vec::new();
        for metadata in resources {
            for path in metadata.paths() {
                if !documents.iter().any(|(known, _)| known == path) {
                    documents.push((path.clone(), metadata.clone()));
                }
            }
        }
        Self { documents }
    }

    /// The document served at `path`, if any.
    pub(crate) fn find(&self, path: &str) -> Option<&ResourceMetadata> {
        if self.documents.is_empty() || !path.starts_with(WELL_KNOWN_PATH) {
            return None;
        }
        self.documents
            .iter()
            .find(|(served, _)| served == path)
            .map(|(_, metadata)| metadata)
    }
}

/// The route's scope requirement: tokens of OAuth issuers must grant every
/// scope the resource publishes, and a refusal names them (`403
/// insufficient_scope`, `scope="…"`), so that the client asks for them.
/// meinGPT's users are vouched for by their organization: their tokens
/// carry roles and teams, not scopes.
pub(crate) fn scope_guard(metadata: &ResourceMetadata) -> Option<GuardLayer> {
    if metadata.scopes_supported().is_empty() {
        return None;
    }
    let scoped = metadata.clone();
    let guard = require_user(move |user| has_scopes(&scoped, user));
    Some(guard.challenge_scope(metadata.scopes_supported()))
}

fn has_scopes(metadata: &ResourceMetadata, user: &MeinGptUser) -> bool {
    user.is_meingpt()
        || metadata
            .scopes_supported()
            .iter()
            .all(|scope| user.has_scope(scope))
}

/// The refusal of `error` with a challenge naming the resource's metadata
/// and, when `name_scopes`, its scopes.
fn reject(
    metadata: &ResourceMetadata,
    realm: &str,
    error: &AuthError,
    name_scopes: bool,
) -> Response<Body> {
    let scopes = metadata.scopes_supported().join(" ");
    let scope = (name_scopes && !scopes.is_empty()).then_some(scopes.as_str());
    let challenge = Challenge::new(realm)
        .scope(scope)
        .resource_metadata(metadata.metadata_url());
    error.to_response(challenge)
}

/// Audience binding of a route (RFC 8707): a token of an OAuth issuer
/// whose `aud` does not name the route's resource is refused with `401
/// invalid_token`, its challenge naming the route's metadata, so that a
/// token issued for another resource (another route, another service of
/// the same authorization server) is never accepted here. meinGPT's tokens
/// keep their organization audience. Sits inside the auth layer.
#[derive(Debug, Clone)]
pub(crate) struct ResourceAudienceLayer {
    metadata: ResourceMetadata,
    realm: String,
}

impl ResourceAudienceLayer {
    pub(crate) fn new(metadata: ResourceMetadata, realm: &str) -> Self {
        Self {
            metadata,
            realm: realm.to_owned(),
        }
    }
}

impl<S> Layer<S> for ResourceAudienceLayer {
    type Service = ResourceAudience<S>;

    fn layer(&self, inner: S) -> Self::Service {
        ResourceAudience {
            inner,
            layer: self.clone(),
        }
    }
}

/// The service of [`ResourceAudienceLayer`].
#[derive(Debug, Clone)]
pub(crate) struct ResourceAudience<S> {
    inner: S,
    layer: ResourceAudienceLayer,
}

/// Whether `user`'s token may be used at the resource `resource`.
fn bound_to(user: &MeinGptUser, resource: &str) -> bool {
    if user.is_meingpt() {
        return true;
    }
    let Some(audience) = user.claim("aud") else {
        return false;
    };
    match audience.as_array() {
        Some(audiences) => audiences.iter().any(|one| one.as_str() == Some(resource)),
        None => audience.as_str() == Some(resource),
    }
}

impl<S> Service<Request<Body>> for ResourceAudience<S>
where
    S: Service<Request<Body>, Response = Response<Body>>,
{
    type Response = Response<Body>;
    type Error = S::Error;
    type Future = ResponseFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request<Body>) -> Self::Future {
        let resource = self.layer.metadata.resource();
        // Without a user the auth layer has answered already.
        let refused = request
            .extensions()
            .get::<MeinGptUser>()
            .is_some_and(|user| !bound_to(user, resource));
        if refused {
            tracing::debug!(
                target: "meingpt_gateway::resource",
                resource,
                "token refused: issued for another resource"
            );
            let error = AuthError::InvalidToken(InvalidToken::WrongAudience);
            let response = reject(&self.layer.metadata, &self.layer.realm, &error, false);
            return ResponseFuture::Refused {
                response: Some(response),
            };
        }
        ResponseFuture::Inner {
            future: self.inner.call(request),
        }
    }
}

pin_project_lite::pin_project! {
    /// The response future of [`ResourceAudience`].
    #[project = Projection]
    pub(crate) enum ResponseFuture<F> {
        Inner { #[pin] future: F },
        Refused { response: Option<Response<Body>> },
    }
}

impl<F, E> Future for ResponseFuture<F>
where
    F: Future<Output = Result<Response<Body>, E>>,
{
    type Output = Result<Response<Body>, E>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        match self.project() {
            Projection::Inner { future } => future.poll(cx),
            Projection::Refused { response } => {
                Poll::Ready(Ok(response.take().expect("polled after completion")))
            }
        }
    }
}

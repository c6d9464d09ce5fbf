//! The one decision path: what decides whether a request may reach a
//! route. Both of a route's stacks are built here, the proxy's and forward
//! auth's, from the same route policy, so proxy mode and forward auth decide
//! alike and the gateway never decides a verdict itself:
//!
//! ```text
//! public route:       inner
//! signed-in:          auth layer → inner
//! roles or teams:     auth layer → policy guard → inner
//! protected resource: auth layer → audience binding → scope guard → (policy guard) → inner
//! ```
//!
//! The auth layer is the crate's ([`AuthLayer`]: token sources,
//! verification, the rejection renderer); the guards are the crate's
//! [`GuardLayer`](meingpt_auth::GuardLayer)s with the route's [`Policy`] and
//! the protected resource's scopes ([`scope_guard`]); the audience binding
//! is [`ResourceAudienceLayer`]. A request that passes reaches `inner` with
//! its [`MeinGptUser`](meingpt_auth::MeinGptUser) in the extensions; a
//! refusal is the crate's answer, carrying its
//! [`AuthError`](meingpt_auth::AuthError).
//!
//! Every variant is one concrete type ([`Decision`]), made of tower's
//! `Either` and `MapResponse`: nothing is boxed per request. Each of the
//! crate's layers answers its refusal in an `AuthBody`; [`flatten`] gives
//! the inner body back as it was and boxes only a refusal, so that every
//! stage answers [`Body`].

use http::Response;
use meingpt_auth::guard::Guard;
use meingpt_auth::{Auth, AuthBody, AuthLayer, GuardLayer, ResourceMetadata};
use tower::Layer;
use tower::util::{Either, MapResponse};

use crate::answer::Body;
use crate::resource::{ResourceAudience, ResourceAudienceLayer, scope_guard};
use crate::routes::Policy;

/// Turns a response of one of the crate's layers into the gateway's body.
type Flatten = fn(Response<AuthBody<Body>>) -> Response<Body>;

/// A route's decision around `S`. See the [module docs](self).
pub(crate) type Decision<S> = Either<S, MapResponse<Auth<Bound<Guarded<Guarded<S>>>>, Flatten>>;

/// `S` behind a guard, or `S` itself when there is none to pass.
type Guarded<S> = Either<MapResponse<Guard<S>, Flatten>, S>;

/// `S` behind a protected resource's audience binding, or `S` itself.
type Bound<S> = Either<ResourceAudience<S>, S>;

/// `inner` behind the decision for `policy` and, on a protected resource,
/// `resource`: nothing on a public route, else `auth` (which names the
/// resource's metadata in its challenges), the audience binding and scope
/// guard of `resource`, and, when the policy asks more than a signed-in
/// user, its guard. `realm` is `auth`'s.
pub(crate) fn decision<S>(
    auth: &AuthLayer,
    realm: &str,
    policy: &Policy,
    resource: Option<&ResourceMetadata>,
    inner: S,
) -> Decision<S> {
    if policy.is_public() {
        return Either::Left(inner);
    }
    let policed = guarded(policy.is_restricted().then(|| policy.guard()), inner);
    let scoped = guarded(resource.and_then(scope_guard), policed);
    let Some(resource) = resource else {
        return Either::Right(MapResponse::new(
            auth.layer(Either::Right(scoped)),
            flatten as Flatten,
        ));
    };
    let bound = ResourceAudienceLayer::new(resource.clone(), realm).layer(scoped);
    let auth = auth.clone().resource_metadata(resource.clone());
    Either::Right(MapResponse::new(
        auth.layer(Either::Left(bound)),
        flatten as Flatten,
    ))
}

/// `inner` behind `guard`, if there is one.
fn guarded<S>(guard: Option<GuardLayer>, inner: S) -> Guarded<S> {
    match guard {
        Some(guard) => Either::Left(MapResponse::new(guard.layer(inner), flatten as Flatten)),
        None => Either::Right(inner),
    }
}

/// The inner body as it was, and only a refusal boxed.
fn flatten(response: Response<AuthBody<Body>>) -> Response<Body> {
    response.map(|body| match body.into_inner() {
        Ok(inner) => inner,
        Err(refused) => Body::new(refused),
    })
}

#[cfg(test)]
mod tests {
    use std::convert::Infallible;

    use http::{Request, StatusCode};
    use meingpt_auth::testing::MockIssuer;
    use meingpt_auth::{AuthError, MeinGptUser, Role};
    use tower::{ServiceExt, service_fn};

    use super::*;

    /// Answers `200` with the user's `sub`, or `anonymous`.
    async fn inner(request: Request<Body>) -> Result<Response<Body>, Infallible> {
        let sub = request
            .extensions()
            .get::<MeinGptUser>()
            .map_or("anonymous".to_owned(), |user| user.sub().to_owned());
        Ok(Response::new(Body::from(sub)))
    }

    /// Status, the crate's refusal if any, body.
    async fn ask(
        layer: &AuthLayer,
        policy: &Policy,
        token: Option<&str>,
    ) -> (StatusCode, Option<AuthError>, String) {
        let mut request = Request::get("/");
        if let Some(token) = token {
            request = request.header("x-meingpt-jwt", token);
        }
        let response = decision(layer, "meingpt", policy, None, service_fn(inner))
            .oneshot(request.body(Body::empty()).unwrap())
            .await
            .unwrap();
        let status = response.status();
        let error = response.extensions().get::<AuthError>().cloned();
        let body = http_body_util::BodyExt::collect(response.into_body())
            .await
            .unwrap()
            .to_bytes();
        (status, error, String::from_utf8_lossy(&body).into_owned())
    }

    #[tokio::test]
    async fn each_policy_decides_with_the_crates_auth_layer_and_guard() {
        let issuer = MockIssuer::start().await;
        let layer = issuer.auth().build().unwrap().layer();
        let member = issuer.demo_member().sign();
        let admin = issuer.demo_admin().sign();
        let admins = Policy::new(vec![Role::Admin], Vec::new(), Vec::new());
        let ok = |sub: &str| (StatusCode::OK, None, sub.to_owned());

        assert_eq!(ask(&layer, &Policy::public(), None).await, ok("anonymous"));
        let (status, error, _) = ask(&layer, &Policy::signed_in(), None).await;
        assert_eq!(
            (status, error),
            (StatusCode::UNAUTHORIZED, Some(AuthError::MissingToken))
        );
        assert_eq!(
            ask(&layer, &Policy::signed_in(), Some(&member)).await,
            ok("member-1")
        );
        let (status, error, _) = ask(&layer, &admins, Some(&member)).await;
        assert_eq!(
            (status, error),
            (StatusCode::FORBIDDEN, Some(AuthError::InsufficientScope))
        );
        assert_eq!(ask(&layer, &admins, Some(&admin)).await, ok("admin-1"));
    }
}

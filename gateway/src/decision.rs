//! The one decision path: what decides whether a request may reach a
//! route. Both of a route's stacks are built here, the proxy's and forward
//! auth's, from the same route policy, so proxy mode and forward auth decide
//! alike and the gateway never decides a verdict itself:
//!
//! ```text
//! public route:   inner
//! signed-in:      auth layer → inner
//! roles or teams: auth layer → policy guard → inner
//! ```
//!
//! The auth layer is the crate's ([`AuthLayer`]: token sources,
//! verification, the rejection renderer); the guard is the crate's
//! [`GuardLayer`] with the route's [`Policy`]. A request that passes reaches
//! `inner` with its [`MeinGptUser`](meingpt_auth::MeinGptUser) in the
//! extensions; a refusal is the crate's answer, carrying its
//! [`AuthError`](meingpt_auth::AuthError).
//!
//! Every variant is one concrete type ([`Decision`]), made of tower's
//! `Either` and `MapResponse`: nothing is boxed per request.

use http::Response;
use meingpt_auth::guard::Guard;
use meingpt_auth::{Auth, AuthBody, AuthLayer};
use tower::Layer;
use tower::util::{Either, MapResponse};

use crate::answer::Body;
use crate::routes::Policy;

/// The body of a route's answer: the inner service's, or a refusal of the
/// auth layer or of the guard. [`into_body`] makes it a [`Body`].
pub(crate) type DecidedBody<B> = AuthBody<AuthBody<B>>;

/// A route's decision around `S`, whose answers have bodies `B`. See the
/// [module docs](self).
pub(crate) type Decision<S, B> = Either<
    MapResponse<S, fn(Response<B>) -> Response<DecidedBody<B>>>,
    Auth<Either<Guard<S>, MapResponse<S, fn(Response<B>) -> Response<AuthBody<B>>>>>,
>;

/// `inner` behind the decision for `policy`: nothing on a public route, else
/// `auth` and, when the policy asks more than a signed-in user, its guard.
pub(crate) fn decision<S, B>(auth: &AuthLayer, policy: &Policy, inner: S) -> Decision<S, B> {
    if policy.is_public() {
        let passed: fn(Response<B>) -> Response<DecidedBody<B>> =
            |response| response.map(|body| AuthBody::new(AuthBody::new(body)));
        return Either::Left(MapResponse::new(inner, passed));
    }
    let guarded = if policy.is_restricted() {
        Either::Left(policy.guard().layer(inner))
    } else {
        let passed: fn(Response<B>) -> Response<AuthBody<B>> =
            |response| response.map(AuthBody::new);
        Either::Right(MapResponse::new(inner, passed))
    };
    Either::Right(auth.layer(guarded))
}

/// One body type for every route: the inner body as it was, and only a
/// refusal boxed.
pub(crate) fn into_body(body: DecidedBody<Body>) -> Body {
    match body.into_inner() {
        Ok(passed) => match passed.into_inner() {
            Ok(inner) => inner,
            Err(refused) => Body::new(refused),
        },
        Err(refused) => Body::new(refused),
    }
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
        let response = decision(layer, policy, service_fn(inner))
            .oneshot(request.body(Body::empty()).unwrap())
            .await
            .unwrap()
            .map(into_body);
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

//! Middleware that authenticates every request with a meinGPT (or other
//! issuer's) token.
//!
//! The token is taken from the configured [`TokenSource`]s (by default
//! `X-meinGPT-JWT`, then `Authorization: Bearer`), verified, and the
//! [`MeinGptUser`] is inserted into the request extensions. A request that
//! fails is answered by the layer itself (RFC 6750, or the gRPC error shape
//! for gRPC calls; see [`AuthError`] and [`rejection`](crate::rejection)) and
//! never reaches the inner service.
//!
//! The layer works in front of any service whose response body is an
//! [`http_body::Body`] of [`Bytes`]: axum, tonic, rmcp's
//! `StreamableHttpService`, hyper services. Its responses carry
//! [`AuthBody`], the inner body or the rejection's.
//!
//! A response to a request authenticated by a token that did not come in
//! `Authorization` (a custom header such as `X-meinGPT-JWT`, or a cookie)
//! gets `Cache-Control: private` unless the handler set `Cache-Control`
//! itself: shared caches know `Authorization` is a credential (RFC 9111
//! §3.5), not the other headers.
//!
//! # Your own middleware
//!
//! Middleware that authenticates by itself (calling
//! [`MeinGptAuth::authenticate`]) makes the [`MeinGptUser`] extractor and
//! the guards accept its result with [`MeinGptAuth::attach_user`].
//!
//! # Example
//!
//! ```
//! use axum::{Router, routing::get, body::Body};
//! use http::{Request, StatusCode};
//! use meingpt_auth::MeinGptAuth;
//! use tower::ServiceExt;
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() {
//! let auth = MeinGptAuth::builder().organization("clx0987654321").build().unwrap();
//! let app = Router::new().route("/", get(|| async { "hello" })).layer(auth.layer());
//!
//! // No token: 401 with a bare challenge.
//! let response = app.oneshot(Request::new(Body::empty())).await.unwrap();
//! assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
//! assert_eq!(response.headers()["www-authenticate"], "Bearer realm=\"meingpt\"");
//! # }
//! ```
//!
//! [`TokenSource`]: crate::TokenSource
//! [`MeinGptAuth::authenticate`]: crate::MeinGptAuth::authenticate

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, ready};

use bytes::Bytes;
use http::request::Parts;
use http::{Extensions, HeaderValue, Request, Response, header};
use tower_layer::Layer;
use tower_service::Service;

use crate::MeinGptAuth;
use crate::body::AuthBody;
use crate::claims::MeinGptUser;
use crate::error::{AuthError, Challenge};
use crate::jwks::{KeyWait, Waited};
use crate::metrics;
use crate::rejection::{Rejection, Renderer, close_if_the_body_stays_unread};
use crate::resource::ResourceMetadata;
use crate::verify::Attempt;

/// Applies [`Auth`] to a service. See the [module docs](self).
#[derive(Debug, Clone)]
pub struct AuthLayer {
    context: AuthContext,
    allow_anonymous: bool,
}

impl AuthLayer {
    /// A layer that requires a valid token.
    pub fn new(auth: MeinGptAuth) -> Self {
        Self {
            context: AuthContext::new(auth, Renderer::default()),
            allow_anonymous: false,
        }
    }

    /// Whether requests without any token pass through anonymously (a token
    /// that is present but bad is rejected either way).
    pub fn allow_anonymous(mut self, allow: bool) -> Self {
        self.allow_anonymous = allow;
        self
    }

    /// Answers refused requests with `render` instead of the default RFC
    /// 6750 (or gRPC) response; the guards and extractors behind this layer
    /// use it too. See [`rejection`](crate::rejection) for an example.
    pub fn render_rejections_with(
        mut self,
        render: impl Fn(&Rejection<'_>) -> Response<Bytes> + Send + Sync + 'static,
    ) -> Self {
        Arc::make_mut(&mut self.context.shared).renderer = Renderer::with_hook(render);
        self
    }

    /// Names `metadata`'s URL in this layer's challenges (and its guards'
    /// and extractors'), instead of the authenticator's
    /// [protected resource](crate::MeinGptAuthBuilder::protected_resource):
    /// for one authenticator in front of several resources, each with its
    /// own metadata ([`MeinGptAuth::describe_resource`]).
    pub fn resource_metadata(mut self, metadata: ResourceMetadata) -> Self {
        Arc::make_mut(&mut self.context.shared).resource = Some(metadata);
        self
    }
}

impl<S> Layer<S> for AuthLayer {
    type Service = Auth<S>;

    fn layer(&self, inner: S) -> Self::Service {
        Auth {
            inner,
            context: self.context.clone(),
            allow_anonymous: self.allow_anonymous,
        }
    }
}

/// Middleware that authenticates requests. See the [module docs](self).
#[derive(Debug, Clone)]
pub struct Auth<S> {
    inner: S,
    context: AuthContext,
    allow_anonymous: bool,
}

impl<S> Auth<S> {
    /// Wraps `inner`, requiring a valid token.
    pub fn new(inner: S, auth: MeinGptAuth) -> Self {
        AuthLayer::new(auth).layer(inner)
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

/// Marks a request as authenticated (by the layer, or by the
/// application's middleware through [`MeinGptAuth::attach_user`]); carries
/// what the extractors and guards need to answer as the layer would. One
/// shared allocation: each request's copy costs one reference count.
#[derive(Clone, Debug)]
pub(crate) struct AuthContext {
    shared: Arc<Shared>,
}

#[derive(Clone, Debug)]
struct Shared {
    auth: MeinGptAuth,
    renderer: Renderer,
    /// The metadata the challenges name.
    resource: Option<ResourceMetadata>,
}

impl AuthContext {
    fn new(auth: MeinGptAuth, renderer: Renderer) -> Self {
        let resource = auth.resource_metadata().cloned();
        Self {
            shared: Arc::new(Shared {
                auth,
                renderer,
                resource,
            }),
        }
    }

    pub(crate) fn reject(&self, error: &AuthError, request: &Parts) -> Response<Bytes> {
        self.reject_naming(error, request, None)
    }

    /// Refuses `request`, naming `scope` (space-separated) as enough.
    pub(crate) fn reject_naming(
        &self,
        error: &AuthError,
        request: &Parts,
        scope: Option<&str>,
    ) -> Response<Bytes> {
        let shared = &*self.shared;
        let challenge = Challenge::new(shared.auth.realm())
            .scope(scope)
            .resource_metadata(shared.resource.as_ref().map(ResourceMetadata::metadata_url));
        let mut response = shared.renderer.render(error, request, challenge);
        close_if_the_body_stays_unread(request, &mut response);
        response
    }

    fn auth(&self) -> &MeinGptAuth {
        &self.shared.auth
    }
}

/// The layers: how a [`MeinGptAuth`] goes in front of a service (the type
/// and its run-time methods are in `src/auth.rs`).
impl MeinGptAuth {
    /// The layer that requires a valid token on every request.
    pub fn layer(&self) -> AuthLayer {
        AuthLayer::new(self.clone())
    }

    /// The layer that lets requests without a token through anonymously;
    /// a token that is present but bad is still rejected.
    pub fn optional_layer(&self) -> AuthLayer {
        AuthLayer::new(self.clone()).allow_anonymous(true)
    }

    /// Marks a request as authenticated by your own middleware, so that the
    /// [`MeinGptUser`] extractor, `Option<MeinGptUser>` and the guards
    /// behind it accept it as if [`layer`](Self::layer) had run: `Some(user)`
    /// for a user from [`authenticate`](Self::authenticate), `None` for an
    /// anonymous request (the extractor and guards then answer `401` with
    /// this configuration's challenge). A request nobody marked is a
    /// server misconfiguration and still gets the `500` that names the
    /// layer.
    ///
    /// ```
    /// use axum::{Router, body::Body, extract::Request, middleware::{self, Next}, routing::get};
    /// use axum::response::{IntoResponse, Response};
    /// use http::StatusCode;
    /// use meingpt_auth::{MeinGptAuth, MeinGptUser};
    /// use tower::ServiceExt;
    ///
    /// async fn authenticate(auth: MeinGptAuth, mut request: Request, next: Next) -> Response {
    ///     match auth.authenticate(request.headers()).await {
    ///         Ok(user) => {
    ///             auth.attach_user(request.extensions_mut(), user);
    ///             next.run(request).await
    ///         }
    ///         Err(error) => (error.status(), "please sign in").into_response(),
    ///     }
    /// }
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// let auth = MeinGptAuth::builder().organization("clx0987654321").build().unwrap();
    /// let app = Router::new()
    ///     .route("/me", get(|user: MeinGptUser| async move { user.sub().to_owned() }))
    ///     .layer(middleware::from_fn(move |request, next| authenticate(auth.clone(), request, next)));
    ///
    /// // Anonymous: the extractor asks for a token (not a 500).
    /// let response = app.oneshot(Request::get("/me").body(Body::empty()).unwrap()).await.unwrap();
    /// assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    /// # }
    /// ```
    pub fn attach_user(&self, extensions: &mut Extensions, user: Option<MeinGptUser>) {
        match user {
            Some(user) => {
                extensions.insert(user);
            }
            None => {
                extensions.remove::<MeinGptUser>();
            }
        }
        extensions.insert(AuthContext::new(self.clone(), Renderer::default()));
    }
}

impl<S, ReqBody, ResBody> Service<Request<ReqBody>> for Auth<S>
where
    S: Service<Request<ReqBody>, Response = Response<ResBody>> + Clone,
{
    type Response = Response<AuthBody<ResBody>>;
    type Error = S::Error;
    type Future = ResponseFuture<S, ReqBody>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request<ReqBody>) -> Self::Future {
        let (parts, body) = request.into_parts();
        let mut waited = Waited::default();
        // A remembered token (the MCP case: one token for a whole chat), a
        // fresh token whose key is cached, no token and a malformed request
        // are decided here, without waiting, and the request goes on to the
        // service that was polled ready; only a request whose issuer's keys
        // are being fetched waits, for the fetch's own task. Nothing here is
        // boxed.
        let state = match self
            .context
            .auth()
            .try_authenticate(&parts.headers, &mut waited)
        {
            Attempt::Done(outcome) => admit(
                outcome,
                parts,
                body,
                &mut self.inner,
                &self.context,
                self.allow_anonymous,
            ),
            Attempt::Wait(wait) => {
                // The clone stays in `self`; the service that was polled
                // ready waits with this request.
                let clone = self.inner.clone();
                State::Waiting {
                    wait,
                    request: Some(Pending {
                        parts,
                        body,
                        inner: std::mem::replace(&mut self.inner, clone),
                        context: self.context.clone(),
                        allow_anonymous: self.allow_anonymous,
                        waited,
                    }),
                }
            }
        };
        ResponseFuture { state }
    }
}

/// A request waiting for an issuer's keys: everything needed to decide it
/// when they are in, and to send it on.
struct Pending<S, ReqBody> {
    parts: Parts,
    body: ReqBody,
    inner: S,
    context: AuthContext,
    allow_anonymous: bool,
    waited: Waited,
}

impl<S, ReqBody, ResBody> Pending<S, ReqBody>
where
    S: Service<Request<ReqBody>, Response = Response<ResBody>>,
{
    /// Tries to authenticate the request again, now that the keys it waited
    /// for are in (or not): sent on, refused, or waiting for other keys.
    fn try_authenticate(mut self) -> State<S, ReqBody, S::Future> {
        match self
            .context
            .auth()
            .try_authenticate(&self.parts.headers, &mut self.waited)
        {
            Attempt::Done(outcome) => admit(
                outcome,
                self.parts,
                self.body,
                &mut self.inner,
                &self.context,
                self.allow_anonymous,
            ),
            Attempt::Wait(wait) => State::Waiting {
                wait,
                request: Some(self),
            },
        }
    }
}

/// Sends a decided request on to `inner` with its user, or refuses it.
fn admit<S, ReqBody, ResBody>(
    outcome: Result<Option<MeinGptUser>, AuthError>,
    mut parts: Parts,
    body: ReqBody,
    inner: &mut S,
    context: &AuthContext,
    allow_anonymous: bool,
) -> State<S, ReqBody, S::Future>
where
    S: Service<Request<ReqBody>, Response = Response<ResBody>>,
{
    let private = match outcome {
        Ok(Some(user)) => {
            metrics::request_admitted(true);
            parts.extensions.insert(user);
            !parts.headers.contains_key(header::AUTHORIZATION)
        }
        Ok(None) if allow_anonymous => {
            metrics::request_admitted(false);
            false
        }
        Ok(None) => return reject(context, &AuthError::MissingToken, &parts),
        Err(error) => return reject(context, &error, &parts),
    };
    parts.extensions.insert(context.clone());
    State::Calling {
        future: inner.call(Request::from_parts(parts, body)),
        private,
    }
}

pin_project_lite::pin_project! {
    /// Response future of [`Auth`].
    pub struct ResponseFuture<S, ReqBody>
    where
        S: Service<Request<ReqBody>>,
    {
        #[pin]
        state: State<S, ReqBody, S::Future>,
    }
}

pin_project_lite::pin_project! {
    #[project = StateProjection]
    enum State<S, ReqBody, F> {
        Waiting {
            wait: KeyWait,
            request: Option<Pending<S, ReqBody>>,
        },
        Calling {
            #[pin]
            future: F,
            // The token came from a header shared caches do not know.
            private: bool,
        },
        Refused {
            response: Option<Response<Bytes>>,
        },
    }
}

impl<S, ReqBody, ResBody> Future for ResponseFuture<S, ReqBody>
where
    S: Service<Request<ReqBody>, Response = Response<ResBody>>,
{
    type Output = Result<Response<AuthBody<ResBody>>, S::Error>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        loop {
            let mut state = self.as_mut().project().state;
            match state.as_mut().project() {
                StateProjection::Waiting { wait, request } => {
                    // How the fetch ended shows in the next try.
                    let _ = ready!(Pin::new(wait).poll(cx));
                    let request = request.take().expect("polled after completion");
                    state.set(request.try_authenticate());
                }
                StateProjection::Calling { future, private } => {
                    let mut response = ready!(future.poll(cx))?;
                    if *private && !response.headers().contains_key(header::CACHE_CONTROL) {
                        response
                            .headers_mut()
                            .insert(header::CACHE_CONTROL, HeaderValue::from_static("private"));
                    }
                    return Poll::Ready(Ok(response.map(AuthBody::new)));
                }
                StateProjection::Refused { response } => {
                    let response = response.take().expect("polled after completion");
                    return Poll::Ready(Ok(response.map(AuthBody::rejection)));
                }
            }
        }
    }
}

fn reject<S, ReqBody, F>(
    context: &AuthContext,
    error: &AuthError,
    parts: &Parts,
) -> State<S, ReqBody, F> {
    metrics::request_refused(error);
    State::Refused {
        response: Some(context.reject(error, parts)),
    }
}

impl<S, ReqBody> fmt::Debug for ResponseFuture<S, ReqBody>
where
    S: Service<Request<ReqBody>>,
{
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ResponseFuture").finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn building_an_authenticator_leaves_the_jsonwebtoken_crypto_provider_to_the_application() {
        let auth = MeinGptAuth::builder()
            .organization("clx0987654321")
            .build()
            .unwrap();
        let _layer = auth.layer();
        // A host application that uses jsonwebtoken itself picks its provider
        // after the authenticator exists.
        let installed = jsonwebtoken::crypto::CryptoProvider::install_default(
            &jsonwebtoken::crypto::aws_lc::DEFAULT_PROVIDER,
        );
        assert!(installed.is_ok(), "a crypto provider was already installed");
    }
}

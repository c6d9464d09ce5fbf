//! The response body of this crate's middleware: [`AuthBody`].
//!
//! The auth layer and the guards answer some requests themselves. So that
//! they work in front of any service (axum, tonic, rmcp's
//! `StreamableHttpService`, a `tower::service_fn` returning
//! `Full<Bytes>`), their responses carry [`AuthBody<B>`]: either the inner
//! service's body `B`, untouched, or the rejection's own bytes. The same
//! holds for the protected resource metadata's middleware, whose own answer
//! is the document; [`ResponseFuture`] is the future of both.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll, ready};

use bytes::Bytes;
use http::Response;
use http_body::{Body, Frame, SizeHint};

pin_project_lite::pin_project! {
    /// Response body of [`Auth`](crate::Auth) and of the guards
    /// ([`GuardLayer`](crate::GuardLayer)): the inner service's body, or a
    /// rejection. See the [module docs](self).
    pub struct AuthBody<B> {
        #[pin]
        kind: Kind<B>,
    }
}

pin_project_lite::pin_project! {
    #[project = KindProjection]
    enum Kind<B> {
        Inner { #[pin] body: B },
        Rejection { data: Option<Bytes> },
    }
}

impl<B> AuthBody<B> {
    /// The inner service's body, passed through untouched.
    pub fn new(body: B) -> Self {
        Self {
            kind: Kind::Inner { body },
        }
    }

    /// A body of fixed bytes, as rejections carry (empty bytes make an
    /// empty body, as a gRPC trailers-only answer needs).
    pub fn rejection(data: impl Into<Bytes>) -> Self {
        let data: Bytes = data.into();
        Self {
            kind: Kind::Rejection {
                data: (!data.is_empty()).then_some(data),
            },
        }
    }

    /// Whether this body is a rejection rather than the inner service's.
    pub fn is_rejection(&self) -> bool {
        matches!(self.kind, Kind::Rejection { .. })
    }

    /// The inner service's body, or `Err(self)` when this body is a
    /// rejection: a service that needs one body type for every route takes
    /// the inner body back as it was and wraps only the refusals.
    ///
    /// ```
    /// use http_body_util::Full;
    /// use meingpt_auth::AuthBody;
    ///
    /// let passed = AuthBody::new(Full::new(bytes::Bytes::from_static(b"hello")));
    /// assert!(passed.into_inner().is_ok());
    /// let refused = AuthBody::<Full<bytes::Bytes>>::rejection("{}");
    /// assert!(refused.into_inner().is_err());
    /// ```
    pub fn into_inner(self) -> Result<B, Self> {
        match self.kind {
            Kind::Inner { body } => Ok(body),
            kind @ Kind::Rejection { .. } => Err(Self { kind }),
        }
    }
}

impl<B> std::fmt::Debug for AuthBody<B> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let kind = match &self.kind {
            Kind::Inner { .. } => "inner",
            Kind::Rejection { .. } => "rejection",
        };
        f.debug_struct("AuthBody").field("kind", &kind).finish()
    }
}

impl<B> Body for AuthBody<B>
where
    B: Body<Data = Bytes>,
{
    type Data = Bytes;
    type Error = B::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        match self.project().kind.project() {
            KindProjection::Inner { body } => body.poll_frame(cx),
            KindProjection::Rejection { data } => Poll::Ready(data.take().map(Frame::data).map(Ok)),
        }
    }

    fn is_end_stream(&self) -> bool {
        match &self.kind {
            Kind::Inner { body } => body.is_end_stream(),
            Kind::Rejection { data } => data.is_none(),
        }
    }

    fn size_hint(&self) -> SizeHint {
        match &self.kind {
            Kind::Inner { body } => body.size_hint(),
            Kind::Rejection { data } => {
                SizeHint::with_exact(data.as_ref().map_or(0, |data| data.len() as u64))
            }
        }
    }
}

pin_project_lite::pin_project! {
    /// Response future of middleware that either calls the inner service
    /// or answers at once: the guards ([`Guard`](crate::guard::Guard)) and
    /// [`ServeResourceMetadata`](crate::resource::ServeResourceMetadata).
    pub struct ResponseFuture<F> {
        #[pin]
        kind: FutureKind<F>,
    }
}

pin_project_lite::pin_project! {
    #[project = FutureKindProjection]
    enum FutureKind<F> {
        Inner { #[pin] future: F },
        Answered { response: Option<Response<Bytes>> },
    }
}

impl<F> ResponseFuture<F> {
    /// The inner service's answer, its body passed through.
    pub(crate) fn inner(future: F) -> Self {
        Self {
            kind: FutureKind::Inner { future },
        }
    }

    /// The middleware's own answer.
    pub(crate) fn answered(response: Response<Bytes>) -> Self {
        Self {
            kind: FutureKind::Answered {
                response: Some(response),
            },
        }
    }
}

impl<F, B, E> Future for ResponseFuture<F>
where
    F: Future<Output = Result<Response<B>, E>>,
{
    type Output = Result<Response<AuthBody<B>>, E>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        match self.project().kind.project() {
            FutureKindProjection::Inner { future } => {
                let response = ready!(future.poll(cx))?;
                Poll::Ready(Ok(response.map(AuthBody::new)))
            }
            FutureKindProjection::Answered { response } => {
                let response = response.take().expect("polled after completion");
                Poll::Ready(Ok(response.map(AuthBody::rejection)))
            }
        }
    }
}

impl<F> std::fmt::Debug for ResponseFuture<F> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ResponseFuture").finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::convert::Infallible;

    struct Never;

    impl Body for Never {
        type Data = Bytes;
        type Error = Infallible;

        fn poll_frame(
            self: Pin<&mut Self>,
            _cx: &mut Context<'_>,
        ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
            Poll::Pending
        }
    }

    fn poll(body: Pin<&mut AuthBody<Never>>) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        let waker = std::task::Waker::noop();
        body.poll_frame(&mut Context::from_waker(waker))
    }

    #[test]
    fn rejection_body_yields_its_bytes_once_and_ends() {
        let mut body = std::pin::pin!(AuthBody::<Never>::rejection("{}"));
        assert_eq!(body.size_hint().exact(), Some(2));
        assert!(!body.is_end_stream());
        let Poll::Ready(Some(Ok(frame))) = poll(body.as_mut()) else {
            panic!("expected a data frame");
        };
        assert_eq!(frame.into_data().unwrap(), "{}");
        assert!(body.is_end_stream());
        assert!(matches!(poll(body.as_mut()), Poll::Ready(None)));
    }

    #[test]
    fn empty_rejection_body_is_at_its_end_from_the_start() {
        let body = AuthBody::<Never>::rejection(Bytes::new());
        assert!(body.is_end_stream());
        assert_eq!(body.size_hint().exact(), Some(0));
    }

    #[test]
    fn into_inner_gives_the_inner_body_back_and_keeps_a_rejection() {
        assert!(matches!(AuthBody::new(Never).into_inner(), Ok(Never)));
        let refused = AuthBody::<Never>::rejection("{}")
            .into_inner()
            .err()
            .expect("a rejection stays one");
        assert!(refused.is_rejection());
        assert_eq!(refused.size_hint().exact(), Some(2));
    }

    #[test]
    fn inner_body_is_polled_through() {
        let mut body = std::pin::pin!(AuthBody::new(Never));
        assert!(!body.is_rejection());
        assert!(poll(body.as_mut()).is_pending());
    }
}

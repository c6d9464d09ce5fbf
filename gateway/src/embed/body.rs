//! The body of an embed route's answers.

use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};

use super::inject::{BoxError, InjectScript};

pin_project_lite::pin_project! {
    /// The body of an embed route's answers: the upstream's as it came, the
    /// upstream's page with the refresh script, or the gateway's own.
    pub struct EmbedBody<B> {
        #[pin]
        kind: BodyKind<B>,
    }
}

pin_project_lite::pin_project! {
    #[project = BodyKindProjection]
    enum BodyKind<B> {
        Inner { #[pin] body: B },
        Injected { #[pin] body: InjectScript<B> },
        Full { data: Option<Bytes> },
    }
}

impl<B> EmbedBody<B> {
    /// The inner body, untouched.
    pub fn inner(body: B) -> Self {
        Self {
            kind: BodyKind::Inner { body },
        }
    }

    pub(super) fn injected(body: InjectScript<B>) -> Self {
        Self {
            kind: BodyKind::Injected { body },
        }
    }

    pub(super) fn full(data: Option<Bytes>) -> Self {
        Self {
            kind: BodyKind::Full { data },
        }
    }
}

impl<B> From<String> for EmbedBody<B> {
    fn from(text: String) -> Self {
        Self::full(Some(Bytes::from(text)))
    }
}

impl<B> From<&'static str> for EmbedBody<B> {
    fn from(text: &'static str) -> Self {
        Self::full(Some(Bytes::from_static(text.as_bytes())))
    }
}

impl<B> Default for EmbedBody<B> {
    fn default() -> Self {
        Self::full(None)
    }
}

impl<B> Body for EmbedBody<B>
where
    B: Body<Data = Bytes>,
    B::Error: Into<BoxError>,
{
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        match self.project().kind.project() {
            BodyKindProjection::Inner { body } => body.poll_frame(cx).map_err(Into::into),
            BodyKindProjection::Injected { body } => body.poll_frame(cx),
            BodyKindProjection::Full { data } => {
                Poll::Ready(data.take().map(|data| Ok(Frame::data(data))))
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        match &self.kind {
            BodyKind::Inner { body } => body.is_end_stream(),
            BodyKind::Injected { .. } => false,
            BodyKind::Full { data } => data.is_none(),
        }
    }

    fn size_hint(&self) -> SizeHint {
        match &self.kind {
            BodyKind::Inner { body } => body.size_hint(),
            BodyKind::Injected { body } => body.size_hint(),
            BodyKind::Full { data } => {
                SizeHint::with_exact(data.as_ref().map_or(0, |d| d.len() as u64))
            }
        }
    }
}

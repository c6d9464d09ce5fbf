//! The response body that adds one `<script>` to an HTML page as it
//! streams: [`InjectScript`], over any inner body.
//!
//! Cloudflare's `lol_html` parses the page chunk by chunk, never holding
//! more than a tag. The script goes first into `<head>` (so that it wraps
//! `fetch` before the app's scripts run), else first into `<body>`, else at
//! the end of the document. Once it is in, the rewriter steps aside at the
//! next tag (a graceful bail-out) and the rest of the page passes as it
//! came, unparsed.

use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll, ready};

use bytes::{Bytes, BytesMut};
use http_body::{Body, Frame, SizeHint};
use lol_html::errors::RewritingError;
use lol_html::html_content::ContentType;
use lol_html::send::{HtmlRewriter, Settings};
use lol_html::{AsciiCompatibleEncoding, MemorySettings, element, end};

/// Errors of the bodies in embed mode.
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// The most memory the rewriter may use for one page (a tag longer than
/// this ends the rewriting; the page passes unchanged from there).
const MEMORY_LIMIT: usize = 1 << 20;

pin_project_lite::pin_project! {
    /// A body with `script` added to the HTML page of the inner body. See
    /// the [module docs](self).
    pub struct InjectScript<B> {
        #[pin]
        inner: B,
        state: State,
    }
}

enum State {
    /// Rewriting: what the rewriter wrote and has not been sent yet is in
    /// `output`.
    Rewriting {
        rewriter: Box<HtmlRewriter<'static, Sink>>,
        output: Arc<Mutex<BytesMut>>,
    },
    /// The script is in (or cannot go in): the inner body passes as is,
    /// after what the rewriter left in `output` and a `held` frame.
    Passing {
        output: Option<Bytes>,
        held: Option<Frame<Bytes>>,
    },
}

/// Where the rewriter writes.
struct Sink(Arc<Mutex<BytesMut>>);

impl lol_html::OutputSink for Sink {
    fn handle_chunk(&mut self, chunk: &[u8]) {
        lock(&self.0).extend_from_slice(chunk);
    }
}

fn lock(output: &Mutex<BytesMut>) -> std::sync::MutexGuard<'_, BytesMut> {
    output.lock().unwrap_or_else(PoisonError::into_inner)
}

/// The marker error that makes the rewriter step aside.
#[derive(Debug)]
struct Injected;

impl std::fmt::Display for Injected {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("the script is in")
    }
}

impl std::error::Error for Injected {}

impl<B> InjectScript<B> {
    /// Adds `script` (HTML, e.g. a `<script>` element) to the page `inner`
    /// carries, read in `charset` (the `Content-Type`'s, UTF-8 when
    /// `None`). Gives `inner` back when the charset is unknown or not
    /// ASCII-compatible (UTF-16): such a page is better left alone.
    pub fn new(inner: B, script: Arc<str>, charset: Option<&str>) -> Result<Self, B> {
        let encoding = match charset {
            None => Some(AsciiCompatibleEncoding::utf_8()),
            Some(label) => encoding_rs::Encoding::for_label(label.as_bytes())
                .and_then(AsciiCompatibleEncoding::new),
        };
        let Some(encoding) = encoding else {
            return Err(inner);
        };
        let output = Arc::new(Mutex::new(BytesMut::new()));
        let injected = Arc::new(AtomicBool::new(false));
        let into_element = {
            let script = script.clone();
            let injected = injected.clone();
            move || {
                let script = script.clone();
                let injected = injected.clone();
                move |element: &mut lol_html::send::Element<'_, '_>| {
                    if !injected.swap(true, Ordering::Relaxed) {
                        element.prepend(&script, ContentType::Html);
                    }
                    Ok(())
                }
            }
        };
        let step_aside = {
            let injected = injected.clone();
            move |_: &mut lol_html::send::Element<'_, '_>| {
                if injected.load(Ordering::Relaxed) {
                    Err(Box::new(Injected) as BoxError)
                } else {
                    Ok(())
                }
            }
        };
        let at_end = {
            let injected = injected.clone();
            move |end: &mut lol_html::html_content::DocumentEnd<'_>| {
                if !injected.swap(true, Ordering::Relaxed) {
                    end.append(&script, ContentType::Html);
                }
                Ok(())
            }
        };
        let settings = Settings::new_send()
            .with_encoding(encoding)
            .with_strict(false)
            .with_adjust_charset_on_meta_tag(false)
            .with_memory_settings(
                MemorySettings::new()
                    .with_max_allowed_memory_usage(MEMORY_LIMIT)
                    .with_graceful_bail_out_on_memory_limit_exceeded(true),
            )
            .with_graceful_bail_out_on_content_handler_error(true)
            // The first element after the script's own ends the rewriting;
            // handlers run in order, so `head`/`body` inject before it looks.
            .append_element_content_handler(element!("*", step_aside))
            .append_element_content_handler(element!("head", into_element()))
            .append_element_content_handler(element!("body", into_element()))
            .append_document_content_handler(end!(at_end));
        let rewriter = HtmlRewriter::new(settings, Sink(output.clone()));
        Ok(Self {
            inner,
            state: State::Rewriting {
                rewriter: Box::new(rewriter),
                output,
            },
        })
    }
}

impl<B> Body for InjectScript<B>
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
        let mut this = self.project();
        loop {
            let (rewriter, output) = match this.state {
                State::Passing { output, held } => {
                    if let Some(data) = output.take() {
                        return Poll::Ready(Some(Ok(Frame::data(data))));
                    }
                    if let Some(frame) = held.take() {
                        return Poll::Ready(Some(Ok(frame)));
                    }
                    return this.inner.poll_frame(cx).map_err(Into::into);
                }
                State::Rewriting { rewriter, output } => (rewriter, output),
            };
            let pending = lock(output).split().freeze();
            if !pending.is_empty() {
                return Poll::Ready(Some(Ok(Frame::data(pending))));
            }
            let data = match ready!(this.inner.as_mut().poll_frame(cx)) {
                Some(Ok(frame)) => match frame.into_data() {
                    Ok(data) => data,
                    // Trailers: the page is over.
                    Err(trailers) => {
                        if let Err(error) = this.state.end(Some(trailers)) {
                            return Poll::Ready(Some(Err(error)));
                        }
                        continue;
                    }
                },
                Some(Err(error)) => return Poll::Ready(Some(Err(error.into()))),
                None => {
                    if let Err(error) = this.state.end(None) {
                        return Poll::Ready(Some(Err(error)));
                    }
                    continue;
                }
            };
            match rewriter.write(&data) {
                Ok(()) => {}
                // Graceful: everything written so far is in `output`, as
                // is; from here on the page passes through.
                Err(
                    RewritingError::ContentHandlerError(_) | RewritingError::MemoryLimitExceeded(_),
                ) => this.state.pass(None),
                Err(error) => return Poll::Ready(Some(Err(error.into()))),
            }
        }
    }

    fn size_hint(&self) -> SizeHint {
        // The length changes; only the lower bound of the inner body holds.
        let mut hint = SizeHint::new();
        hint.set_lower(self.inner.size_hint().lower());
        hint
    }
}

impl State {
    /// Ends the rewriting at the end of the page (with its trailers, if
    /// any): what the rewriter still holds is sent, then the trailers.
    fn end(&mut self, trailers: Option<Frame<Bytes>>) -> Result<(), BoxError> {
        let State::Rewriting { rewriter, output } = std::mem::replace(
            self,
            State::Passing {
                output: None,
                held: trailers,
            },
        ) else {
            return Ok(());
        };
        let ended = rewriter.end();
        let rest = lock(&output).split().freeze();
        if let State::Passing { output, .. } = self {
            *output = (!rest.is_empty()).then_some(rest);
        }
        match ended {
            Ok(()) | Err(RewritingError::ContentHandlerError(_)) => Ok(()),
            Err(error) => Err(error.into()),
        }
    }

    /// From now on the inner body passes as is, after what the rewriter
    /// wrote and `held`.
    fn pass(&mut self, held: Option<Frame<Bytes>>) {
        if let State::Rewriting { output, .. } = self {
            let rest = lock(output).split().freeze();
            *self = State::Passing {
                output: (!rest.is_empty()).then_some(rest),
                held,
            };
        }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::VecDeque;
    use std::convert::Infallible;

    use http_body_util::BodyExt;

    use super::*;

    const SCRIPT: &str = r#"<script src="/_meingpt/embed.js"></script>"#;

    /// A body that yields its chunks one per poll.
    struct Chunks(VecDeque<Bytes>);

    impl Body for Chunks {
        type Data = Bytes;
        type Error = Infallible;

        fn poll_frame(
            mut self: Pin<&mut Self>,
            _cx: &mut Context<'_>,
        ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
            Poll::Ready(self.0.pop_front().map(|chunk| Ok(Frame::data(chunk))))
        }
    }

    fn chunks(parts: &[&str]) -> Chunks {
        Chunks(parts.iter().map(|p| Bytes::from(p.to_string())).collect())
    }

    async fn frames(parts: &[&str], charset: Option<&str>) -> Vec<String> {
        let Ok(body) = InjectScript::new(chunks(parts), Arc::from(SCRIPT), charset) else {
            panic!("refused the charset");
        };
        let mut body = std::pin::pin!(body);
        let mut out = Vec::new();
        while let Some(frame) = body.frame().await {
            let data = frame.unwrap().into_data().unwrap();
            out.push(String::from_utf8(data.to_vec()).unwrap());
        }
        out
    }

    async fn rewritten(parts: &[&str]) -> String {
        frames(parts, None).await.concat()
    }

    #[tokio::test]
    async fn the_script_goes_first_into_head_and_the_rest_is_untouched() {
        let page = [
            "<!doctype html><html><he",
            "ad><meta charset=utf-8><title>Notes</title></head>",
            "<body><p class=x>Hi <b>there</b></p></body></html>",
        ];
        assert_eq!(
            rewritten(&page).await,
            format!(
                "<!doctype html><html><head>{SCRIPT}<meta charset=utf-8><title>Notes</title>\
                 </head><body><p class=x>Hi <b>there</b></p></body></html>"
            )
        );
    }

    #[tokio::test]
    async fn a_page_is_sent_on_as_it_streams_not_at_its_end() {
        let out = frames(
            &[
                "<html><head><title>t</title></head><body>",
                "part two",
                "part three</body></html>",
            ],
            None,
        )
        .await;
        assert!(out[0].contains(SCRIPT), "{out:?}");
        assert!(!out[0].contains("part two"), "{out:?}");
        assert_eq!(
            out.last().map(String::as_str),
            Some("part three</body></html>")
        );
    }

    #[tokio::test]
    async fn without_head_the_script_goes_into_body_else_at_the_end() {
        assert_eq!(
            rewritten(&["<body><p>x</p></body>"]).await,
            format!("<body>{SCRIPT}<p>x</p></body>")
        );
        assert_eq!(
            rewritten(&["plain text, no tags"]).await,
            format!("plain text, no tags{SCRIPT}")
        );
        assert_eq!(rewritten(&[]).await, SCRIPT);
    }

    #[tokio::test]
    async fn a_head_in_a_comment_or_script_is_not_a_head() {
        assert_eq!(
            rewritten(&["<!-- <head> --><script>var s = '<head>';</script><head></head>"]).await,
            format!("<!-- <head> --><script>var s = '<head>';</script><head>{SCRIPT}</head>")
        );
    }

    #[tokio::test]
    async fn a_page_in_a_single_byte_charset_gets_the_script_and_keeps_its_bytes() {
        let out = rewritten(&["<head><title>Gr\u{fc}\u{df}e</title></head>"]).await;
        assert!(out.starts_with(&format!("<head>{SCRIPT}")));
        let latin1 = InjectScript::new(
            chunks(&["<head></head>"]),
            Arc::from(SCRIPT),
            Some("iso-8859-1"),
        );
        assert!(latin1.is_ok());
    }

    #[test]
    fn a_utf16_page_is_left_alone() {
        assert!(InjectScript::new(chunks(&[]), Arc::from(SCRIPT), Some("utf-16le")).is_err());
        assert!(
            InjectScript::new(chunks(&[]), Arc::from(SCRIPT), Some("no-such-charset")).is_err()
        );
    }
}

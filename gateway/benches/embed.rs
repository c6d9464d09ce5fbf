//! What embed mode costs an answer (`cargo bench -p meingpt-gateway --bench
//! embed`): the [`Embed`] layer around an app that answers at once, the
//! answer's body read to its end in 16 KiB frames, as hyper reads an
//! upstream's.
//!
//! - `html_100k/*`: a 100 KB HTML page loaded into meinGPT's frame: with
//!   the refresh script added as it streams (`injected`), and the same
//!   answer without the layer (`without_layer`);
//! - `json_100k/*` and `json_small/*`: answers that are not pages (a 100 KB
//!   and a 40-byte JSON body) through the layer and without it: what the
//!   layer costs every answer that is not rewritten.

use std::collections::VecDeque;
use std::convert::Infallible;
use std::hint::black_box;
use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use criterion::{Criterion, criterion_group, criterion_main};
use http::{Request, Response};
use http_body::{Body, Frame};
use http_body_util::BodyExt;
use meingpt_gateway::embed::{EmbedLayer, EmbedOptions, SessionExpiry};
use tower::{Layer, Service, ServiceExt, service_fn};

/// A body that yields its chunks one per poll.
#[derive(Default)]
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

/// A page of about `size` bytes: a head, then paragraphs with markup.
fn page(size: usize) -> Bytes {
    let mut page = String::from(
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>Notes</title>\
         <link rel=\"stylesheet\" href=\"/static/app.css\"><script src=\"/static/app.js\" defer></script>\
         </head><body><main>",
    );
    let mut n = 0;
    while page.len() < size {
        page.push_str(&format!(
            "<section class=\"note\" data-id=\"{n}\"><h2>Note {n}</h2><p>Quarterly figures for \
             <a href=\"/teams/{n}\">team {n}</a>: <em>revenue</em> up, costs <b>flat</b>.</p></section>"
        ));
        n += 1;
    }
    page.push_str("</main></body></html>");
    Bytes::from(page)
}

fn chunks(body: &Bytes) -> Chunks {
    Chunks(
        body.chunks(16 * 1024)
            .map(|chunk| body.slice_ref(chunk))
            .collect(),
    )
}

/// An app answering `body` with `content_type`, as behind the session
/// cookie layer (which tells when the session ends).
fn app(
    body: Bytes,
    content_type: &'static str,
) -> impl Service<Request<Chunks>, Response = Response<Chunks>, Error = Infallible, Future: Send> + Clone
{
    service_fn(move |_: Request<Chunks>| {
        let body = body.clone();
        async move {
            let mut response = Response::new(chunks(&body));
            response
                .headers_mut()
                .insert(http::header::CONTENT_TYPE, content_type.parse().unwrap());
            response
                .extensions_mut()
                .insert(SessionExpiry::new(4_102_444_800));
            Ok::<_, Infallible>(response)
        }
    })
}

fn navigation() -> Request<Chunks> {
    Request::get("/notes")
        .header("sec-fetch-site", "cross-site")
        .header("sec-fetch-mode", "navigate")
        .header("sec-fetch-dest", "iframe")
        .header("cookie", "__Host-meingpt-session=a.b.c")
        .body(Chunks::default())
        .unwrap()
}

fn fetch() -> Request<Chunks> {
    Request::get("/api/notes")
        .header("sec-fetch-site", "same-origin")
        .header("sec-fetch-mode", "cors")
        .header("cookie", "__Host-meingpt-session=a.b.c")
        .body(Chunks::default())
        .unwrap()
}

fn layer() -> EmbedLayer<
    impl Service<Request<Chunks>, Response = Response<Chunks>, Error = Infallible, Future: Send>
    + Clone
    + Send
    + 'static,
> {
    let session = service_fn(|_: Request<Chunks>| async {
        Ok::<_, Infallible>(Response::new(Chunks::default()))
    });
    EmbedLayer::new(
        "/",
        EmbedOptions {
            meingpt_origins: vec!["https://app.meingpt.com".to_owned()],
            inject_script: true,
            partition_cookies: false,
        },
        session,
    )
}

/// Sends `request` through `service` and reads the answer to its end;
/// returns its length.
async fn answer<S, B>(service: S, request: Request<Chunks>) -> usize
where
    S: Service<Request<Chunks>, Response = Response<B>, Error = Infallible>,
    B: Body<Data = Bytes>,
    B::Error: std::fmt::Debug,
{
    let response = service.oneshot(request).await.unwrap();
    let mut body = std::pin::pin!(response.into_body());
    let mut length = 0;
    while let Some(frame) = body.frame().await {
        if let Ok(data) = frame.unwrap().into_data() {
            length += data.len();
        }
    }
    length
}

fn embed(c: &mut Criterion) {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    let page = page(100 * 1024);
    let json_100k = Bytes::from(format!("[{}0]", "1234567890,".repeat(100 * 1024 / 11)));
    let json_small = Bytes::from_static(b"{\"user\":\"member-1\",\"notes\":[1,2,3,4,5]}");

    // The script is in, once: the page grew by exactly the tag.
    let injected = runtime.block_on(answer(
        layer().layer(app(page.clone(), "text/html; charset=utf-8")),
        navigation(),
    ));
    assert!(injected > page.len() && injected < page.len() + 200);

    let mut group = c.benchmark_group("html_100k");
    group.bench_function("injected", |b| {
        let service = layer().layer(app(page.clone(), "text/html; charset=utf-8"));
        b.iter(|| runtime.block_on(answer(service.clone(), black_box(navigation()))))
    });
    group.bench_function("without_layer", |b| {
        let service = app(page.clone(), "text/html; charset=utf-8");
        b.iter(|| runtime.block_on(answer(service.clone(), black_box(navigation()))))
    });
    group.finish();

    for (name, body) in [("json_100k", &json_100k), ("json_small", &json_small)] {
        let mut group = c.benchmark_group(name);
        group.bench_function("through_layer", |b| {
            let service = layer().layer(app(body.clone(), "application/json"));
            b.iter(|| runtime.block_on(answer(service.clone(), black_box(fetch()))))
        });
        group.bench_function("without_layer", |b| {
            let service = app(body.clone(), "application/json");
            b.iter(|| runtime.block_on(answer(service.clone(), black_box(fetch()))))
        });
        group.finish();
    }
}

criterion_group!(benches, embed);
criterion_main!(benches);

//! The Custom AI App's routes: the page, its script, and the JSON API.
//!
//! - `GET /`: the page (`index.html`), with the meinGPT origin in
//!   `<meta name="meingpt-origin">` for the script's `postMessage` checks;
//! - `GET /app.js`: the page's script;
//! - `GET /api/me`: the signed-in user, behind the auth layer (`401`
//!   without a valid `Authorization: Bearer` token).
//!
//! Every response carries `Content-Security-Policy: frame-ancestors <meinGPT
//! origin>` and `Referrer-Policy: no-referrer` from [`FrameAncestorsLayer`],
//! so browsers render the app only inside meinGPT.

use axum::http::header::{CACHE_CONTROL, CONTENT_SECURITY_POLICY, CONTENT_TYPE};
use axum::response::IntoResponse;
use axum::routing::get;
use axum::{Json, Router};
use meingpt_auth::{FrameAncestorsLayer, MeinGptAuth, MeinGptUser};

const INDEX_HTML: &str = include_str!("index.html");
const APP_JS: &str = include_str!("app.js");

/// What the page may load and run: its own script and API, nothing else.
/// (`frame-ancestors` comes from [`FrameAncestorsLayer`], as a second policy.)
const PAGE_POLICY: &str = "default-src 'none'; script-src 'self'; connect-src 'self'; \
                           style-src 'unsafe-inline'; img-src 'self' data:; base-uri 'none'; \
                           form-action 'none'";

/// The app: the page and script, `/api/me` behind `auth`, and `frame` on
/// every response. The page trusts `postMessage` from the first origin
/// `frame` allows.
pub fn router(auth: &MeinGptAuth, frame: &FrameAncestorsLayer) -> Router {
    let meingpt_origin = frame.origins().first().map(String::as_str).unwrap_or("");
    // Origins are validated (scheme://host[:port]); escape anyway.
    let page = INDEX_HTML.replace("{{MEINGPT_ORIGIN}}", &html_escape(meingpt_origin));

    let api = Router::new().route("/api/me", get(me)).layer(auth.layer());

    Router::new()
        .route(
            "/",
            get(move || {
                let page = page.clone();
                async move {
                    (
                        [
                            (CONTENT_TYPE, "text/html; charset=utf-8"),
                            (CACHE_CONTROL, "no-store"),
                            (CONTENT_SECURITY_POLICY, PAGE_POLICY),
                        ],
                        page,
                    )
                }
            }),
        )
        .route(
            "/app.js",
            get(|| async {
                (
                    [
                        (CONTENT_TYPE, "text/javascript; charset=utf-8"),
                        (CACHE_CONTROL, "no-cache"),
                    ],
                    APP_JS,
                )
                    .into_response()
            }),
        )
        .merge(api)
        .layer(frame.clone())
}

async fn me(user: MeinGptUser) -> Json<MeinGptUser> {
    Json(user)
}

fn html_escape(text: &str) -> String {
    let mut escaped = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => escaped.push_str("&amp;"),
            '<' => escaped.push_str("&lt;"),
            '>' => escaped.push_str("&gt;"),
            '"' => escaped.push_str("&quot;"),
            '\'' => escaped.push_str("&#39;"),
            c => escaped.push(c),
        }
    }
    escaped
}

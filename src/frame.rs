//! Middleware that lets only meinGPT embed a Custom AI App:
//! `Content-Security-Policy: frame-ancestors <meinGPT origin> [more origins]`
//! and `Referrer-Policy: no-referrer` on every response.
//!
//! A Custom AI App runs in an iframe on meinGPT and receives the user's
//! token in its URL. A page that any site could frame is a page any site
//! could trick a user into using, so the app must tell browsers that only
//! meinGPT's origin (and, if you wish, a few more) may embed it. Browsers
//! then refuse to render the app inside any other page.
//!
//! [`FrameAncestorsLayer`] checks every origin when it is configured (an
//! origin is `scheme://host[:port]`: no path, no query, no wildcard; plain
//! `http://` only for loopback hosts) and sets the headers with
//! [tower-http's `SetResponseHeader`](tower_http::set_header::SetResponseHeader):
//!
//! - `Content-Security-Policy: frame-ancestors …` is *appended*, so a
//!   policy your handlers send is kept, and browsers enforce both;
//! - `Referrer-Policy` (default `no-referrer`) *replaces* any other value,
//!   so the app's URLs never leak to the sites it links to or loads from.
//!
//! # Example
//!
//! ```
//! use axum::{Router, routing::get, body::Body};
//! use http::{Request, StatusCode};
//! use meingpt_auth::FrameAncestorsLayer;
//! use tower::ServiceExt;
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), meingpt_auth::InvalidOrigin> {
//! let app = Router::new()
//!     .route("/", get(|| async { "<!doctype html><title>My app</title>" }))
//!     .layer(FrameAncestorsLayer::new("https://app.meingpt.com")?);
//!
//! let response = app.oneshot(Request::get("/").body(Body::empty()).unwrap()).await.unwrap();
//! assert_eq!(response.status(), StatusCode::OK);
//! assert_eq!(
//!     response.headers()["content-security-policy"],
//!     "frame-ancestors https://app.meingpt.com"
//! );
//! assert_eq!(response.headers()["referrer-policy"], "no-referrer");
//! # Ok(())
//! # }
//! ```
//!
//! A self-hosted instance and a staging instance:
//!
//! ```
//! use meingpt_auth::FrameAncestorsLayer;
//!
//! let layer = FrameAncestorsLayer::new("https://meingpt.example.com")?
//!     .allow("https://staging.meingpt.example.com:8443")?;
//! assert_eq!(
//!     layer.content_security_policy(),
//!     "frame-ancestors https://meingpt.example.com https://staging.meingpt.example.com:8443"
//! );
//!
//! // Anything but an origin is refused when configured.
//! assert!(FrameAncestorsLayer::new("https://*.meingpt.com").is_err());
//! assert!(FrameAncestorsLayer::new("https://app.meingpt.com/apps").is_err());
//! # Ok::<(), meingpt_auth::InvalidOrigin>(())
//! ```

use std::fmt;

use http::HeaderValue;
use http::header::{CONTENT_SECURITY_POLICY, REFERRER_POLICY};
use tower_http::set_header::SetResponseHeader;
use tower_layer::Layer;
use url::Url;

use crate::config::DEFAULT_ISSUER;
use crate::url_policy::is_loopback;

/// Middleware that sets `Content-Security-Policy: frame-ancestors …` and
/// `Referrer-Policy`. See the [module docs](self).
///
/// It is tower-http's [`SetResponseHeader`] twice: the outer one sets
/// `Referrer-Policy`, the inner one appends the content security policy.
pub type FrameAncestors<S> = SetResponseHeader<SetResponseHeader<S, HeaderValue>, HeaderValue>;

/// Applies [`FrameAncestors`] to a service. See the [module docs](self).
#[derive(Debug, Clone)]
pub struct FrameAncestorsLayer {
    /// Normalized origins; empty means `'none'`.
    origins: Vec<String>,
    csp: HeaderValue,
    referrer_policy: HeaderValue,
}

/// The short form of [`FrameAncestorsLayer::new`]: only `meingpt_origin`
/// may embed the app.
pub fn frame_ancestors(meingpt_origin: &str) -> Result<FrameAncestorsLayer, InvalidOrigin> {
    FrameAncestorsLayer::new(meingpt_origin)
}

impl FrameAncestorsLayer {
    /// Only `origin` (your meinGPT instance, such as
    /// `https://app.meingpt.com`) may embed the app.
    pub fn new(origin: &str) -> Result<Self, InvalidOrigin> {
        Self::none().allow(origin)
    }

    /// Only meinGPT's public instance, `https://app.meingpt.com`, may embed
    /// the app.
    pub fn meingpt() -> Self {
        Self::new(DEFAULT_ISSUER).unwrap_or_else(|_| Self::none())
    }

    /// No page may embed the app: `frame-ancestors 'none'`. Origins added
    /// with [`allow`](Self::allow) replace `'none'`.
    pub fn none() -> Self {
        Self {
            origins: Vec::new(),
            csp: HeaderValue::from_static("frame-ancestors 'none'"),
            referrer_policy: HeaderValue::from_static("no-referrer"),
        }
    }

    /// Lets `origin` embed the app as well.
    pub fn allow(mut self, origin: &str) -> Result<Self, InvalidOrigin> {
        let origin = parse_origin(origin)?;
        if !self.origins.contains(&origin) {
            self.origins.push(origin);
        }
        let policy = format!("frame-ancestors {}", self.origins.join(" "));
        // Serialized origins are printable ASCII, always a valid header value.
        self.csp = HeaderValue::try_from(policy).map_err(|_| InvalidOrigin {
            origin: String::new(),
            reason: "not representable in a header",
        })?;
        Ok(self)
    }

    /// Sends this `Referrer-Policy` instead of `no-referrer` (for example
    /// `same-origin`).
    pub fn referrer_policy(mut self, policy: HeaderValue) -> Self {
        self.referrer_policy = policy;
        self
    }

    /// The origins that may embed the app, normalized (`scheme://host[:port]`,
    /// default ports left out); empty for `'none'`. Hand the first to the
    /// page as the origin whose `postMessage` it trusts.
    pub fn origins(&self) -> &[String] {
        &self.origins
    }

    /// The `Content-Security-Policy` value this layer sends.
    pub fn content_security_policy(&self) -> &HeaderValue {
        &self.csp
    }
}

impl<S> Layer<S> for FrameAncestorsLayer {
    type Service = FrameAncestors<S>;

    fn layer(&self, inner: S) -> Self::Service {
        let inner = SetResponseHeader::appending(inner, CONTENT_SECURITY_POLICY, self.csp.clone());
        SetResponseHeader::overriding(inner, REFERRER_POLICY, self.referrer_policy.clone())
    }
}

/// An origin [`FrameAncestorsLayer`] cannot use, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InvalidOrigin {
    origin: String,
    reason: &'static str,
}

impl InvalidOrigin {
    /// The value that was refused.
    pub fn origin(&self) -> &str {
        &self.origin
    }

    /// What is wrong with it.
    pub fn reason(&self) -> &str {
        self.reason
    }
}

impl fmt::Display for InvalidOrigin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:?} is not an origin: {}", self.origin, self.reason)
    }
}

impl std::error::Error for InvalidOrigin {}

/// `scheme://host[:port]` (one trailing `/` tolerated), normalized the way
/// browsers serialize origins (`event.origin`).
fn parse_origin(origin: &str) -> Result<String, InvalidOrigin> {
    let refuse = |reason| InvalidOrigin {
        origin: origin.to_owned(),
        reason,
    };
    if origin.starts_with('\'') {
        return Err(refuse(
            "CSP keywords are not origins; use FrameAncestorsLayer::none() for 'none'",
        ));
    }
    if origin.contains('*') {
        return Err(refuse("wildcards are not allowed; list each origin"));
    }
    if origin.trim() != origin || origin.contains(char::is_whitespace) {
        return Err(refuse("contains whitespace"));
    }
    let url = Url::parse(origin).map_err(|_| refuse("expected scheme://host[:port]"))?;
    match url.scheme() {
        "https" => {}
        "http" if is_loopback(&url) => {}
        "http" => {
            return Err(refuse(
                "plain http:// is only allowed for loopback hosts; use https://",
            ));
        }
        _ => return Err(refuse("the scheme must be https (or http for loopback)")),
    }
    match url.host() {
        None => return Err(refuse("expected scheme://host[:port]")),
        // A CSP host is letters, digits, `-` and `.`: nothing that could end
        // the source list or the directive (`;`, `,`).
        Some(url::Host::Domain(domain))
            if !domain
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.') =>
        {
            return Err(refuse("the host may only contain letters, digits, - and ."));
        }
        Some(_) => {}
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err(refuse("must not contain credentials"));
    }
    if url.path() != "/" || url.query().is_some() || url.fragment().is_some() {
        return Err(refuse("must not have a path, query or fragment"));
    }
    Ok(url.origin().ascii_serialization())
}

#[cfg(test)]
mod tests {
    use super::*;

    use std::convert::Infallible;

    use http::{Request, Response};
    use tower_service::Service;

    #[test]
    fn origins_are_normalized_as_browsers_serialize_them() {
        for (given, expected) in [
            ("https://app.meingpt.com", "https://app.meingpt.com"),
            ("https://app.meingpt.com/", "https://app.meingpt.com"),
            ("HTTPS://App.MeinGPT.com", "https://app.meingpt.com"),
            ("https://app.meingpt.com:443", "https://app.meingpt.com"),
            (
                "https://meingpt.example.com:8443",
                "https://meingpt.example.com:8443",
            ),
            ("http://127.0.0.1:4000", "http://127.0.0.1:4000"),
            ("http://localhost:4000", "http://localhost:4000"),
            ("http://[::1]:4000", "http://[::1]:4000"),
            ("https://bücher.example", "https://xn--bcher-kva.example"),
        ] {
            assert_eq!(parse_origin(given).as_deref(), Ok(expected), "{given}");
        }
    }

    #[test]
    fn anything_but_an_origin_is_refused() {
        for given in [
            "",
            "*",
            "https://*.meingpt.com",
            "https://app.meingpt.com/apps",
            "https://app.meingpt.com/?x=1",
            "https://app.meingpt.com/#x",
            "https://user:pw@app.meingpt.com",
            "http://app.meingpt.com",
            "http://10.0.0.1",
            "ftp://app.meingpt.com",
            "data:text/html,hi",
            "app.meingpt.com",
            "'none'",
            "'self'",
            " https://app.meingpt.com",
            "https://app.meingpt.com https://evil.example",
            "https://app.meingpt.com;script-src *",
            "https://app.meingpt.com;script-src",
            "https://app.meingpt.com,evil.example",
            "https://app_meingpt.com",
        ] {
            let error = parse_origin(given).expect_err(given);
            assert_eq!(error.origin(), given);
            assert!(!error.reason().is_empty());
        }
    }

    #[test]
    fn the_policy_lists_each_allowed_origin_once() {
        let layer = FrameAncestorsLayer::new("https://app.meingpt.com")
            .and_then(|l| l.allow("https://meingpt.example.com"))
            .and_then(|l| l.allow("https://app.meingpt.com/"))
            .unwrap();
        assert_eq!(
            layer.content_security_policy(),
            "frame-ancestors https://app.meingpt.com https://meingpt.example.com"
        );
        assert_eq!(
            layer.origins(),
            ["https://app.meingpt.com", "https://meingpt.example.com"]
        );
    }

    #[test]
    fn presets_say_what_they_are() {
        assert_eq!(
            FrameAncestorsLayer::meingpt().content_security_policy(),
            "frame-ancestors https://app.meingpt.com"
        );
        assert_eq!(
            FrameAncestorsLayer::none().content_security_policy(),
            "frame-ancestors 'none'"
        );
        assert!(FrameAncestorsLayer::none().origins().is_empty());
        assert_eq!(
            frame_ancestors("https://app.meingpt.com")
                .unwrap()
                .content_security_policy(),
            "frame-ancestors https://app.meingpt.com"
        );
    }

    #[derive(Clone)]
    struct Fixed(Vec<(&'static str, &'static str)>);

    impl Service<Request<()>> for Fixed {
        type Response = Response<()>;
        type Error = Infallible;
        type Future = std::future::Ready<Result<Response<()>, Infallible>>;

        fn poll_ready(
            &mut self,
            _: &mut std::task::Context<'_>,
        ) -> std::task::Poll<Result<(), Infallible>> {
            std::task::Poll::Ready(Ok(()))
        }

        fn call(&mut self, _: Request<()>) -> Self::Future {
            let mut response = Response::new(());
            for (name, value) in &self.0 {
                response
                    .headers_mut()
                    .append(*name, HeaderValue::from_static(value));
            }
            std::future::ready(Ok(response))
        }
    }

    async fn headers_through(layer: &FrameAncestorsLayer, inner: Fixed, name: &str) -> Vec<String> {
        let response = layer.layer(inner).call(Request::new(())).await.unwrap();
        response
            .headers()
            .get_all(name)
            .iter()
            .map(|v| v.to_str().unwrap().to_owned())
            .collect()
    }

    #[tokio::test]
    async fn a_policy_of_the_inner_service_is_kept_and_ours_added() {
        let layer = FrameAncestorsLayer::meingpt();
        let inner = Fixed(vec![("content-security-policy", "script-src 'self'")]);
        assert_eq!(
            headers_through(&layer, inner, "content-security-policy").await,
            [
                "script-src 'self'",
                "frame-ancestors https://app.meingpt.com"
            ]
        );
    }

    #[tokio::test]
    async fn the_referrer_policy_replaces_the_inner_services() {
        let inner = || Fixed(vec![("referrer-policy", "unsafe-url")]);
        let layer = FrameAncestorsLayer::meingpt();
        assert_eq!(
            headers_through(&layer, inner(), "referrer-policy").await,
            ["no-referrer"]
        );
        let layer = layer.referrer_policy(HeaderValue::from_static("same-origin"));
        assert_eq!(
            headers_through(&layer, inner(), "referrer-policy").await,
            ["same-origin"]
        );
    }
}

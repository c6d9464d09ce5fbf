//! Middleware that answers `400` to a request whose `Host` RFC 9112 §3.2
//! refuses: missing from an HTTP/1.1 request, sent more than once, or not a
//! `host[:port]`; and to one whose `Host` names another host than its
//! target (an absolute-form target, HTTP/2's `:authority`).
//!
//! Two `Host` headers are two answers to "which site is this for": a proxy
//! in front may route by one and the upstream serve by the other.
//!
//! # Example
//!
//! ```
//! use http::{Request, Response, StatusCode};
//! use meingpt_gateway::host::RequireHostLayer;
//! use tower::{Layer, ServiceExt, service_fn};
//!
//! # tokio_test_block_on(async {
//! let service = RequireHostLayer::new().layer(service_fn(|_: Request<()>| async {
//!     Ok::<_, std::convert::Infallible>(Response::new(String::new()))
//! }));
//! let request = Request::get("/").header("host", "a").header("host", "b").body(()).unwrap();
//! let response = service.oneshot(request).await.unwrap();
//! assert_eq!(response.status(), StatusCode::BAD_REQUEST);
//! # });
//! # fn tokio_test_block_on<F: std::future::Future>(f: F) -> F::Output {
//! #     tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(f)
//! # }
//! ```

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use http::header::{self, HeaderValue};
use http::{Request, Response, StatusCode, Version};
use tower::{Layer, Service};

/// Why a request's `Host` is refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum BadHost {
    /// An HTTP/1.1 request without `Host`.
    Missing,
    /// More than one `Host` header.
    Repeated,
    /// A value that is not `host[:port]`.
    Malformed,
    /// A `Host` that names another host than the request target.
    Disagrees,
}

impl BadHost {
    /// A short reason, for the log.
    pub fn as_str(self) -> &'static str {
        match self {
            BadHost::Missing => "no Host header",
            BadHost::Repeated => "more than one Host header",
            BadHost::Malformed => "Host is not host[:port]",
            BadHost::Disagrees => "Host names another host than the request target",
        }
    }
}

/// Checks a request's `Host` as RFC 9112 §3.2 and RFC 9113 §8.3.1 ask.
pub fn check<B>(request: &Request<B>) -> Result<(), BadHost> {
    let mut hosts = request.headers().get_all(header::HOST).iter();
    let Some(host) = hosts.next() else {
        // HTTP/1.0 may omit it; HTTP/2 and 3 carry `:authority` instead.
        return if request.version() == Version::HTTP_11 {
            Err(BadHost::Missing)
        } else {
            Ok(())
        };
    };
    if hosts.next().is_some() {
        return Err(BadHost::Repeated);
    }
    let (name, port) = split_host(host).ok_or(BadHost::Malformed)?;
    if let Some(target) = request.uri().authority() {
        let same_port = match (port, target.port_u16()) {
            (Some(a), Some(b)) => a == b,
            _ => true,
        };
        if !name.eq_ignore_ascii_case(target.host()) || !same_port {
            return Err(BadHost::Disagrees);
        }
    }
    Ok(())
}

/// `host[:port]` as the name and the port: a DNS name or IPv4 address
/// (letters, digits, `-`, `.`, `_`) or a bracketed IPv6 literal, and a
/// port of one to five digits up to 65535.
fn split_host(value: &HeaderValue) -> Option<(&str, Option<u16>)> {
    let value = value.to_str().ok()?;
    let (name, port) = if value.starts_with('[') {
        let end = value.find(']')? + 1;
        let (literal, rest) = value.split_at(end);
        let address = &literal[1..end - 1];
        let valid = !address.is_empty()
            && address
                .bytes()
                .all(|b| b.is_ascii_hexdigit() || b == b':' || b == b'.');
        if !valid {
            return None;
        }
        match rest {
            "" => (literal, None),
            _ => (literal, Some(rest.strip_prefix(':')?)),
        }
    } else {
        let (name, port) = match value.split_once(':') {
            Some((name, port)) => (name, Some(port)),
            None => (value, None),
        };
        let valid = !name.is_empty()
            && name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.' || b == b'_');
        if !valid {
            return None;
        }
        (name, port)
    };
    let port = match port {
        None => None,
        Some(digits) => {
            let valid =
                (1..=5).contains(&digits.len()) && digits.bytes().all(|b| b.is_ascii_digit());
            if !valid {
                return None;
            }
            Some(digits.parse::<u16>().ok()?)
        }
    };
    Some((name, port))
}

/// Applies [`RequireHost`]. See the [module docs](self).
#[derive(Debug, Clone, Copy, Default)]
pub struct RequireHostLayer;

impl RequireHostLayer {
    /// The layer.
    pub fn new() -> Self {
        Self
    }
}

impl<S> Layer<S> for RequireHostLayer {
    type Service = RequireHost<S>;

    fn layer(&self, inner: S) -> Self::Service {
        RequireHost::new(inner)
    }
}

/// Middleware that refuses requests with a bad `Host`. See the
/// [module docs](self).
#[derive(Debug, Clone)]
pub struct RequireHost<S> {
    inner: S,
}

impl<S> RequireHost<S> {
    /// Wraps `inner`.
    pub fn new(inner: S) -> Self {
        Self { inner }
    }

    /// The inner service.
    pub fn get_ref(&self) -> &S {
        &self.inner
    }

    /// The inner service, mutably.
    pub fn get_mut(&mut self) -> &mut S {
        &mut self.inner
    }

    /// The inner service, unwrapped.
    pub fn into_inner(self) -> S {
        self.inner
    }
}

impl<S, ReqBody, ResBody> Service<Request<ReqBody>> for RequireHost<S>
where
    S: Service<Request<ReqBody>, Response = Response<ResBody>>,
    ResBody: From<&'static str>,
{
    type Response = Response<ResBody>;
    type Error = S::Error;
    type Future = ResponseFuture<S::Future, ResBody>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request<ReqBody>) -> Self::Future {
        match check(&request) {
            Ok(()) => ResponseFuture {
                state: State::Inner {
                    future: self.inner.call(request),
                },
            },
            Err(bad) => {
                tracing::debug!(target: "meingpt_gateway::host", reason = bad.as_str(), "request refused");
                let mut response = Response::new(ResBody::from("bad request: Host\n"));
                *response.status_mut() = StatusCode::BAD_REQUEST;
                response.headers_mut().insert(
                    header::CONTENT_TYPE,
                    HeaderValue::from_static("text/plain; charset=utf-8"),
                );
                ResponseFuture {
                    state: State::Refused {
                        response: Some(response),
                    },
                }
            }
        }
    }
}

pin_project_lite::pin_project! {
    /// Response future of [`RequireHost`].
    pub struct ResponseFuture<F, B> {
        #[pin]
        state: State<F, B>,
    }
}

pin_project_lite::pin_project! {
    #[project = StateProjection]
    enum State<F, B> {
        Inner { #[pin] future: F },
        Refused { response: Option<Response<B>> },
    }
}

impl<F, B, E> Future for ResponseFuture<F, B>
where
    F: Future<Output = Result<Response<B>, E>>,
{
    type Output = Result<Response<B>, E>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        match self.project().state.project() {
            StateProjection::Inner { future } => future.poll(cx),
            StateProjection::Refused { response } => {
                Poll::Ready(Ok(response.take().expect("polled after completion")))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(version: Version, target: &str, hosts: &[&'static str]) -> Request<()> {
        let mut builder = Request::get(target).version(version);
        for host in hosts {
            builder = builder.header(header::HOST, *host);
        }
        builder.body(()).unwrap()
    }

    #[test]
    fn http11_needs_exactly_one_host() {
        assert_eq!(
            check(&request(Version::HTTP_11, "/", &[])),
            Err(BadHost::Missing)
        );
        assert_eq!(
            check(&request(Version::HTTP_11, "/", &["a", "b"])),
            Err(BadHost::Repeated)
        );
        assert_eq!(
            check(&request(Version::HTTP_11, "/", &["a", "a"])),
            Err(BadHost::Repeated)
        );
        assert_eq!(check(&request(Version::HTTP_11, "/", &["a"])), Ok(()));
        assert_eq!(check(&request(Version::HTTP_10, "/", &[])), Ok(()));
        assert_eq!(check(&request(Version::HTTP_2, "http://a/", &[])), Ok(()));
    }

    #[test]
    fn host_must_be_a_host_and_an_optional_port() {
        for good in [
            "app.example.com",
            "app.example.com:8443",
            "127.0.0.1:3000",
            "[::1]:8080",
            "[::1]",
            "internal_name",
        ] {
            assert_eq!(
                check(&request(Version::HTTP_11, "/", &[good])),
                Ok(()),
                "{good}"
            );
        }
        for bad in [
            "", ":80", "a:", "a:xyz", "a:99999", "a:123456", "user@a", "a,b", "a;b", "a%41", "[]",
            "[::1", "[::1]x", "[zz]", "a:1:2",
        ] {
            assert_eq!(
                check(&request(Version::HTTP_11, "/", &[bad])),
                Err(BadHost::Malformed),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn host_must_name_the_host_of_an_absolute_target() {
        let absolute = |host| request(Version::HTTP_11, "http://app.example.com:8080/x", &[host]);
        assert_eq!(check(&absolute("APP.example.com:8080")), Ok(()));
        assert_eq!(check(&absolute("app.example.com")), Ok(()));
        assert_eq!(
            check(&absolute("admin.example.com")),
            Err(BadHost::Disagrees)
        );
        assert_eq!(
            check(&absolute("app.example.com:8081")),
            Err(BadHost::Disagrees)
        );
    }
}

//! Forward auth's view of the original request: its URI and method, read
//! from exactly one configured header each.
//!
//! A proxy in front of the gateway sets the configured headers and passes
//! the client's other headers on, so a client may send any header too. The
//! configured header therefore counts only once (a repeated one is refused),
//! and any other spelling of it (`X-Original-URI`, `X-Forwarded-Uri`,
//! `X-Original-URL`, `X-Rewrite-URL`, `X-Original-Method`,
//! `X-Forwarded-Method`, each also with `_` for `-`) must name the same
//! request or the request is refused: an app behind the proxy might read that
//! spelling instead.

use http::Method;
use http::header::{HeaderMap, HeaderName, HeaderValue};

use super::Refusal;
use crate::identity::reads_as;

/// `X-Original-URI`: nginx's `$request_uri` (also ingress-nginx with `auth-method`).
const X_ORIGINAL_URI: HeaderName = HeaderName::from_static("x-original-uri");
/// `X-Original-Method`: nginx, ingress-nginx.
const X_ORIGINAL_METHOD: HeaderName = HeaderName::from_static("x-original-method");
/// `X-Forwarded-Uri`: Caddy's `forward_auth`, Traefik's `ForwardAuth`.
const X_FORWARDED_URI: HeaderName = HeaderName::from_static("x-forwarded-uri");
/// `X-Forwarded-Method`: Caddy, Traefik.
const X_FORWARDED_METHOD: HeaderName = HeaderName::from_static("x-forwarded-method");

/// Every name a proxy or an app may give the original URI.
pub const URI_SPELLINGS: [&str; 4] = [
    "X-Original-URI",
    "X-Forwarded-Uri",
    "X-Original-URL",
    "X-Rewrite-URL",
];
/// Every name a proxy or an app may give the original method.
pub const METHOD_SPELLINGS: [&str; 2] = ["X-Original-Method", "X-Forwarded-Method"];

/// The headers forward auth reads the original request's URI and method from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OriginalRequestHeaders {
    uri: HeaderName,
    method: HeaderName,
}

impl OriginalRequestHeaders {
    /// The original URI in `uri`, the method in `method`.
    pub fn new(uri: HeaderName, method: HeaderName) -> Self {
        Self { uri, method }
    }

    /// `X-Original-URI` and `X-Original-Method` (nginx; the default).
    pub fn x_original() -> Self {
        Self::new(X_ORIGINAL_URI, X_ORIGINAL_METHOD)
    }

    /// `X-Forwarded-Uri` and `X-Forwarded-Method` (Caddy, Traefik).
    pub fn x_forwarded() -> Self {
        Self::new(X_FORWARDED_URI, X_FORWARDED_METHOD)
    }

    /// The header read for the URI.
    pub fn uri(&self) -> &HeaderName {
        &self.uri
    }

    /// The header read for the method.
    pub fn method(&self) -> &HeaderName {
        &self.method
    }
}

impl Default for OriginalRequestHeaders {
    fn default() -> Self {
        Self::x_original()
    }
}

/// The original request a forward-auth request is about.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OriginalRequest<'h> {
    /// Its path as sent (percent-encoded, without the query); `None` when
    /// the proxy named none.
    pub path: Option<&'h str>,
    /// Its method; `None` when the proxy named none.
    pub method: Option<Method>,
}

impl<'h> OriginalRequest<'h> {
    /// Reads the original request from `headers`, the names of `names`, and
    /// `suffix`: the path after the endpoint's own (Envoy's `ext_authz`
    /// appends the original path to it), which must agree with the header
    /// when both are there.
    pub fn read(
        headers: &'h HeaderMap,
        suffix: Option<&'h str>,
        names: &OriginalRequestHeaders,
    ) -> Result<Self, Refusal> {
        let uri_value = only(headers, &names.uri)?;
        let method_value = only(headers, &names.method)?;
        let target = uri_value
            .map(|value| target_of(value).ok_or(Refusal::MalformedOriginalUri))
            .transpose()?;
        let method = method_value
            .map(|value| {
                Method::from_bytes(value.as_bytes()).map_err(|_| Refusal::MalformedOriginalMethod)
            })
            .transpose()?;
        // Every spelling starts with `x`; a configured name may not.
        let initials = [b'x', first_byte(&names.uri), first_byte(&names.method)];
        for name in headers.keys() {
            if !initials.contains(&first_byte(name)) || *name == names.uri || *name == names.method
            {
                continue;
            }
            let text = name.as_str();
            let conflicts = if is_spelling(text, names.uri.as_str(), &URI_SPELLINGS) {
                headers
                    .get_all(name)
                    .iter()
                    .any(|value| target.is_none() || target_of(value) != target)
            } else if is_spelling(text, names.method.as_str(), &METHOD_SPELLINGS) {
                headers
                    .get_all(name)
                    .iter()
                    .any(|value| method_value.map(HeaderValue::as_bytes) != Some(value.as_bytes()))
            } else {
                false
            };
            if conflicts {
                return Err(Refusal::ConflictingOriginalHeaders);
            }
        }
        let path = match (target, suffix) {
            (Some((path, _)), Some(suffix)) if path != suffix => {
                return Err(Refusal::OriginalPathDisagrees);
            }
            (Some((path, _)), _) => Some(path),
            (None, suffix) => suffix,
        };
        Ok(Self { path, method })
    }
}

/// Removes every header that names an original URI or method, under any
/// spelling: an upstream in proxy mode must not read another path than the
/// one the gateway decided on.
pub fn remove_original_request_headers(headers: &mut HeaderMap) {
    let named: Vec<HeaderName> = headers
        .keys()
        .filter(|name| {
            let name = name.as_str();
            URI_SPELLINGS
                .iter()
                .chain(METHOD_SPELLINGS.iter())
                .any(|spelling| reads_as(name, spelling))
        })
        .cloned()
        .collect();
    for name in named {
        headers.remove(name);
    }
}

/// The one value of `name`; refused when it is repeated.
fn only<'h>(headers: &'h HeaderMap, name: &HeaderName) -> Result<Option<&'h HeaderValue>, Refusal> {
    let mut values = headers.get_all(name).iter();
    let first = values.next();
    if values.next().is_some() {
        return Err(Refusal::RepeatedOriginalHeader);
    }
    Ok(first)
}

/// The first byte of a header name (never empty).
fn first_byte(name: &HeaderName) -> u8 {
    name.as_str().as_bytes().first().copied().unwrap_or(0)
}

/// The request target a header value names.
fn target_of(value: &HeaderValue) -> Option<(&str, Option<&str>)> {
    value.to_str().ok().and_then(request_target)
}

/// Whether `name` (lowercase) is `configured` or one of `spellings`, with
/// `_` read as `-`.
fn is_spelling(name: &str, configured: &str, spellings: &[&str]) -> bool {
    reads_as(name, configured) || spellings.iter().any(|spelling| reads_as(name, spelling))
}

/// The path and query of a request target as HTTP reads it (RFC 9112
/// §3.2): origin form (`/path?query`), or absolute form
/// (`http://host/path?query`) only when it starts with a scheme. `None`
/// for anything else, and for a target with a fragment, whitespace or
/// control characters, which no request line carries.
fn request_target(value: &str) -> Option<(&str, Option<&str>)> {
    if value.bytes().any(|b| b <= b' ' || b == b'#' || b == 0x7f) {
        return None;
    }
    let path_and_query = if value.starts_with('/') {
        value
    } else {
        let (scheme, rest) = value.split_once("://")?;
        if !scheme.eq_ignore_ascii_case("http") && !scheme.eq_ignore_ascii_case("https") {
            return None;
        }
        let authority_end = rest.find(['/', '?']).unwrap_or(rest.len());
        if authority_end == 0 {
            return None;
        }
        &rest[authority_end..]
    };
    let (path, query) = match path_and_query.split_once('?') {
        Some((path, query)) => (path, Some(query)),
        None => (path_and_query, None),
    };
    Some((if path.is_empty() { "/" } else { path }, query))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut headers = HeaderMap::new();
        for (name, value) in pairs {
            headers.append(*name, HeaderValue::from_static(value));
        }
        headers
    }

    fn read<'h>(
        headers: &'h HeaderMap,
        suffix: Option<&'h str>,
    ) -> Result<OriginalRequest<'h>, Refusal> {
        OriginalRequest::read(headers, suffix, &OriginalRequestHeaders::default())
    }

    fn target(value: &str) -> Option<(&str, Option<&str>)> {
        request_target(value)
    }

    #[test]
    fn the_target_is_origin_form_unless_it_starts_with_a_scheme() {
        assert_eq!(target("/a/b?token=x"), Some(("/a/b", Some("token=x"))));
        assert_eq!(
            target("/admin/x://y/public"),
            Some(("/admin/x://y/public", None))
        );
        assert_eq!(target("https://h.example/a?b"), Some(("/a", Some("b"))));
        assert_eq!(target("HTTP://h.example"), Some(("/", None)));
        assert_eq!(target("http://h.example?q"), Some(("/", Some("q"))));
        for malformed in [
            "admin",
            "x://y/public",
            "ftp://h/a",
            "http:///a",
            "/a#b",
            "/a b",
            "*",
            "",
        ] {
            assert_eq!(target(malformed), None, "{malformed}");
        }
    }

    #[test]
    fn the_configured_header_is_read_once() {
        let sent = headers(&[
            ("x-original-uri", "/admin/x?y=1"),
            ("x-original-method", "POST"),
        ]);
        let original = read(&sent, None).unwrap();
        assert_eq!(original.path, Some("/admin/x"));
        assert_eq!(original.method, Some(Method::POST));
        let twice = headers(&[("x-original-uri", "/public"), ("x-original-uri", "/admin")]);
        assert_eq!(read(&twice, None), Err(Refusal::RepeatedOriginalHeader));
        let twice = headers(&[("x-original-method", "GET"), ("x-original-method", "GET")]);
        assert_eq!(read(&twice, None), Err(Refusal::RepeatedOriginalHeader));
        assert_eq!(
            read(&HeaderMap::new(), None),
            Ok(OriginalRequest {
                path: None,
                method: None
            })
        );
    }

    #[test]
    fn another_spelling_must_agree() {
        for other in [
            "x-forwarded-uri",
            "x-original-url",
            "x-rewrite-url",
            "x_original_uri",
            "x_forwarded_uri",
        ] {
            let mut sent = headers(&[("x-original-uri", "/admin/x?q=1")]);
            sent.insert(
                HeaderName::from_static(other),
                HeaderValue::from_static("/public/x"),
            );
            assert_eq!(
                read(&sent, None),
                Err(Refusal::ConflictingOriginalHeaders),
                "{other}"
            );
        }
        // Without the configured header, any other spelling is a conflict.
        let sent = headers(&[("x-forwarded-uri", "/public/x")]);
        assert_eq!(read(&sent, None), Err(Refusal::ConflictingOriginalHeaders));
        // The same target, in absolute form too, agrees.
        let sent = headers(&[
            ("x-original-uri", "/admin/x?q=1"),
            ("x-forwarded-uri", "/admin/x?q=1"),
            ("x-original-url", "https://app.example.com/admin/x?q=1"),
        ]);
        assert_eq!(read(&sent, None).unwrap().path, Some("/admin/x"));
        let sent = headers(&[("x-original-method", "GET"), ("x-forwarded-method", "POST")]);
        assert_eq!(read(&sent, None), Err(Refusal::ConflictingOriginalHeaders));
        let sent = headers(&[("x-original-method", "GET"), ("x_forwarded_method", "GET")]);
        assert_eq!(read(&sent, None).unwrap().method, Some(Method::GET));
    }

    #[test]
    fn the_configured_names_decide_which_is_read() {
        let sent = headers(&[("x-forwarded-uri", "/admin"), ("x-forwarded-method", "PUT")]);
        let original =
            OriginalRequest::read(&sent, None, &OriginalRequestHeaders::x_forwarded()).unwrap();
        assert_eq!(original.path, Some("/admin"));
        assert_eq!(original.method, Some(Method::PUT));
        let sent = headers(&[("x-forwarded-uri", "/admin"), ("x-original-uri", "/public")]);
        assert_eq!(
            OriginalRequest::read(&sent, None, &OriginalRequestHeaders::x_forwarded()),
            Err(Refusal::ConflictingOriginalHeaders)
        );
    }

    #[test]
    fn the_path_after_the_endpoint_must_agree_with_the_header() {
        assert_eq!(
            read(&HeaderMap::new(), Some("/admin")).unwrap().path,
            Some("/admin")
        );
        let sent = headers(&[("x-original-uri", "/admin?x")]);
        assert_eq!(read(&sent, Some("/admin")).unwrap().path, Some("/admin"));
        let sent = headers(&[("x-original-uri", "/public")]);
        assert_eq!(
            read(&sent, Some("/admin")),
            Err(Refusal::OriginalPathDisagrees)
        );
    }

    #[test]
    fn malformed_values_are_refused() {
        let sent = headers(&[("x-original-uri", "x://y/public")]);
        assert_eq!(read(&sent, None), Err(Refusal::MalformedOriginalUri));
        let sent = headers(&[("x-original-method", "G E T")]);
        assert_eq!(read(&sent, None), Err(Refusal::MalformedOriginalMethod));
    }

    #[test]
    fn every_spelling_is_removed_for_the_upstream() {
        let mut sent = headers(&[
            ("x-original-uri", "/a"),
            ("x_original_url", "/a"),
            ("x-rewrite-url", "/a"),
            ("x-forwarded-method", "GET"),
            ("x-kept", "1"),
        ]);
        remove_original_request_headers(&mut sent);
        assert_eq!(sent.len(), 1);
        assert!(sent.contains_key("x-kept"));
    }
}

//! Where a request's token is read from: [`TokenSource`].
//!
//! By default the layer looks at `X-meinGPT-JWT` first, then at
//! `Authorization: Bearer` (scheme case-insensitive). The first source that
//! is present wins, so an app that also receives an API key in
//! `Authorization` keeps working when meinGPT sends its own header.

use http::header::{AUTHORIZATION, COOKIE};
use http::{HeaderMap, HeaderName};

use crate::error::InvalidRequest;

/// The header meinGPT forwards the user's token in.
pub const MEINGPT_JWT_HEADER: HeaderName = HeaderName::from_static("x-meingpt-jwt");

/// A place in a request a token may be carried in.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum TokenSource {
    /// `X-meinGPT-JWT: <jwt>`, as meinGPT sends it to MCP servers.
    MeinGptHeader,
    /// `Authorization: Bearer <jwt>` (RFC 6750 §2.1).
    AuthorizationBearer,
    /// Any other header holding the bare token.
    Header(HeaderName),
    /// A cookie with this name holding the bare token.
    Cookie(String),
}

impl TokenSource {
    /// The default order: `X-meinGPT-JWT`, then `Authorization: Bearer`.
    pub fn defaults() -> Vec<TokenSource> {
        vec![TokenSource::MeinGptHeader, TokenSource::AuthorizationBearer]
    }

    /// The token this source finds in `headers`: `Ok(None)` when the source
    /// is absent, an error when it is present but malformed or repeated.
    pub fn find<'h>(&self, headers: &'h HeaderMap) -> Result<Option<&'h str>, InvalidRequest> {
        match self {
            Self::MeinGptHeader => bare_header(headers, &MEINGPT_JWT_HEADER),
            Self::Header(name) => bare_header(headers, name),
            Self::AuthorizationBearer => bearer(headers),
            Self::Cookie(name) => cookie(headers, name),
        }
    }
}

/// The token carried by the first present source in `sources`.
pub(crate) fn extract<'h>(
    sources: &[TokenSource],
    headers: &'h HeaderMap,
) -> Result<Option<&'h str>, InvalidRequest> {
    for source in sources {
        if let Some(token) = source.find(headers)? {
            return Ok(Some(token));
        }
    }
    Ok(None)
}

fn bare_header<'h>(
    headers: &'h HeaderMap,
    name: &HeaderName,
) -> Result<Option<&'h str>, InvalidRequest> {
    let mut values = headers.get_all(name).iter();
    let Some(value) = values.next() else {
        return Ok(None);
    };
    if values.next().is_some() {
        return Err(InvalidRequest::RepeatedCredentials);
    }
    token68(trim_spaces(value.as_bytes())).map(Some)
}

fn bearer(headers: &HeaderMap) -> Result<Option<&str>, InvalidRequest> {
    let mut found = None;
    for value in headers.get_all(AUTHORIZATION) {
        let value = trim_spaces(value.as_bytes());
        if value.len() < 6 || !value[..6].eq_ignore_ascii_case(b"bearer") {
            continue;
        }
        let rest = &value[6..];
        if !rest.is_empty() && !is_space(rest[0]) {
            // "BearerXYZ" is another scheme.
            continue;
        }
        if found.is_some() {
            return Err(InvalidRequest::RepeatedCredentials);
        }
        found = Some(token68(trim_spaces(rest))?);
    }
    Ok(found)
}

fn cookie<'h>(headers: &'h HeaderMap, name: &str) -> Result<Option<&'h str>, InvalidRequest> {
    let mut found = None;
    for value in headers.get_all(COOKIE) {
        for pair in value.as_bytes().split(|b| *b == b';') {
            let Some(eq) = pair.iter().position(|b| *b == b'=') else {
                continue;
            };
            if trim_spaces(&pair[..eq]) != name.as_bytes() {
                continue;
            }
            if found.is_some() {
                return Err(InvalidRequest::RepeatedCredentials);
            }
            let token = trim_spaces(&pair[eq + 1..]);
            let token = token
                .strip_prefix(b"\"")
                .and_then(|t| t.strip_suffix(b"\""))
                .unwrap_or(token);
            found = Some(token68(token)?);
        }
    }
    Ok(found)
}

fn is_space(b: u8) -> bool {
    b == b' ' || b == b'\t'
}

fn trim_spaces(mut bytes: &[u8]) -> &[u8] {
    while let [first, rest @ ..] = bytes
        && is_space(*first)
    {
        bytes = rest;
    }
    while let [rest @ .., last] = bytes
        && is_space(*last)
    {
        bytes = rest;
    }
    bytes
}

/// RFC 6750's `b64token`: `1*( ALPHA / DIGIT / "-" / "." / "_" / "~" / "+" / "/" ) *"="`.
fn token68(value: &[u8]) -> Result<&str, InvalidRequest> {
    if value.is_empty() {
        return Err(InvalidRequest::EmptyToken);
    }
    let padding = value.iter().rev().take_while(|b| **b == b'=').count();
    let body = &value[..value.len() - padding];
    // Branch-free per byte, so that the check over a whole token vectorizes.
    let well_formed = !body.is_empty() && body.iter().fold(true, |ok, b| ok & is_b64token(*b));
    if !well_formed {
        return Err(InvalidRequest::MalformedCredentials);
    }
    // Only ASCII is left, so this cannot fail.
    std::str::from_utf8(value).map_err(|_| InvalidRequest::MalformedCredentials)
}

fn is_b64token(b: u8) -> bool {
    (b.wrapping_sub(b'a') < 26)
        | (b.wrapping_sub(b'A') < 26)
        | (b.wrapping_sub(b'0') < 10)
        | (b == b'-')
        | (b == b'.')
        | (b == b'_')
        | (b == b'~')
        | (b == b'+')
        | (b == b'/')
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;

    fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            map.append(
                HeaderName::from_bytes(name.as_bytes()).unwrap(),
                HeaderValue::from_str(value).unwrap(),
            );
        }
        map
    }

    fn defaults(pairs: &[(&str, &str)]) -> Result<Option<String>, InvalidRequest> {
        let map = headers(pairs);
        extract(&TokenSource::defaults(), &map).map(|t| t.map(str::to_owned))
    }

    #[test]
    fn meingpt_header_wins_over_authorization() {
        let found = defaults(&[
            ("authorization", "Bearer api-key"),
            ("x-meingpt-jwt", "a.b.c"),
        ]);
        assert_eq!(found, Ok(Some("a.b.c".into())));
    }

    #[test]
    fn bearer_scheme_is_case_insensitive() {
        for scheme in ["Bearer", "bearer", "BEARER", "bEaReR"] {
            let found = defaults(&[("authorization", &format!("{scheme} a.b.c"))]);
            assert_eq!(found, Ok(Some("a.b.c".into())), "{scheme}");
        }
    }

    #[test]
    fn other_schemes_are_no_token() {
        assert_eq!(
            defaults(&[("authorization", "Basic dXNlcjpwYXNz")]),
            Ok(None)
        );
        assert_eq!(defaults(&[("authorization", "Bearerish a.b.c")]), Ok(None));
        assert_eq!(defaults(&[]), Ok(None));
    }

    #[test]
    fn empty_repeated_and_malformed_credentials_are_invalid_requests() {
        assert_eq!(
            defaults(&[("authorization", "Bearer")]),
            Err(InvalidRequest::EmptyToken)
        );
        assert_eq!(
            defaults(&[("authorization", "Bearer a.b c")]),
            Err(InvalidRequest::MalformedCredentials)
        );
        assert_eq!(
            defaults(&[("x-meingpt-jwt", "a.b.c"), ("x-meingpt-jwt", "d.e.f")]),
            Err(InvalidRequest::RepeatedCredentials)
        );
        assert_eq!(
            defaults(&[
                ("authorization", "Bearer a.b.c"),
                ("authorization", "Bearer d.e.f")
            ]),
            Err(InvalidRequest::RepeatedCredentials)
        );
        assert_eq!(
            defaults(&[("x-meingpt-jwt", "")]),
            Err(InvalidRequest::EmptyToken)
        );
        assert_eq!(
            defaults(&[("x-meingpt-jwt", "a\"b")]),
            Err(InvalidRequest::MalformedCredentials)
        );
    }

    #[test]
    fn non_ascii_bearer_value_is_malformed() {
        let mut map = HeaderMap::new();
        map.insert(
            AUTHORIZATION,
            HeaderValue::from_bytes(b"Bearer \xff\xfe").unwrap(),
        );
        assert_eq!(
            extract(&TokenSource::defaults(), &map),
            Err(InvalidRequest::MalformedCredentials)
        );
    }

    #[test]
    fn cookie_and_custom_header_sources_find_their_token() {
        let map = headers(&[
            ("cookie", "theme=dark; session=a.b.c"),
            ("x-token", "d.e.f"),
        ]);
        let cookie = TokenSource::Cookie("session".into());
        assert_eq!(cookie.find(&map), Ok(Some("a.b.c")));
        let header = TokenSource::Header(HeaderName::from_static("x-token"));
        assert_eq!(header.find(&map), Ok(Some("d.e.f")));
    }
}

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
        self.find_unchecked(headers)?
            .map(Unchecked::check)
            .transpose()
    }

    /// [`find`](Self::find), leaving the token's syntax to be checked.
    fn find_unchecked<'h>(
        &self,
        headers: &'h HeaderMap,
    ) -> Result<Option<Unchecked<'h>>, InvalidRequest> {
        match self {
            Self::MeinGptHeader => bare_header(headers, &MEINGPT_JWT_HEADER),
            Self::Header(name) => bare_header(headers, name),
            Self::AuthorizationBearer => bearer(headers),
            Self::Cookie(name) => cookie(headers, name),
        }
    }
}

/// A token as a request carries it, its syntax (RFC 6750's `b64token`) not
/// yet checked: a token byte for byte equal to one that verified needs no
/// check, any other gets it before it is decoded.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Unchecked<'h>(&'h [u8]);

impl<'h> Unchecked<'h> {
    /// The token's bytes.
    pub(crate) fn bytes(self) -> &'h [u8] {
        self.0
    }

    /// The token, if its syntax is right; the error a request with it
    /// gets otherwise.
    pub(crate) fn check(self) -> Result<&'h str, InvalidRequest> {
        token68(self.0)
    }
}

/// The token carried by the first present source in `sources`, its syntax
/// not yet checked (whether the source is present, repeated or empty is).
pub(crate) fn extract<'h>(
    sources: &[TokenSource],
    headers: &'h HeaderMap,
) -> Result<Option<Unchecked<'h>>, InvalidRequest> {
    for source in sources {
        if let Some(token) = source.find_unchecked(headers)? {
            return Ok(Some(token));
        }
    }
    Ok(None)
}

fn bare_header<'h>(
    headers: &'h HeaderMap,
    name: &HeaderName,
) -> Result<Option<Unchecked<'h>>, InvalidRequest> {
    let mut values = headers.get_all(name).iter();
    let Some(value) = values.next() else {
        return Ok(None);
    };
    if values.next().is_some() {
        return Err(InvalidRequest::RepeatedCredentials);
    }
    Ok(Some(Unchecked(trim_spaces(value.as_bytes()))))
}

/// The one token among values that repeat a credential: as the values come,
/// a malformed first token is refused as such, a second one as repeated.
fn one_of<'h>(
    found: Option<Unchecked<'h>>,
    token: &'h [u8],
) -> Result<Option<Unchecked<'h>>, InvalidRequest> {
    match found {
        Some(first) => {
            first.check()?;
            Err(InvalidRequest::RepeatedCredentials)
        }
        None => Ok(Some(Unchecked(token))),
    }
}

fn bearer(headers: &HeaderMap) -> Result<Option<Unchecked<'_>>, InvalidRequest> {
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
        found = one_of(found, trim_spaces(rest))?;
    }
    Ok(found)
}

fn cookie<'h>(headers: &'h HeaderMap, name: &str) -> Result<Option<Unchecked<'h>>, InvalidRequest> {
    let mut found = None;
    for value in headers.get_all(COOKIE) {
        for pair in value.as_bytes().split(|b| *b == b';') {
            let Some(eq) = pair.iter().position(|b| *b == b'=') else {
                continue;
            };
            if trim_spaces(&pair[..eq]) != name.as_bytes() {
                continue;
            }
            let token = trim_spaces(&pair[eq + 1..]);
            let token = token
                .strip_prefix(b"\"")
                .and_then(|t| t.strip_suffix(b"\""))
                .unwrap_or(token);
            found = one_of(found, token)?;
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

    /// The token the default sources find, checked as a request's is.
    fn checked(map: &HeaderMap) -> Result<Option<&str>, InvalidRequest> {
        extract(&TokenSource::defaults(), map)?
            .map(Unchecked::check)
            .transpose()
    }

    fn defaults(pairs: &[(&str, &str)]) -> Result<Option<String>, InvalidRequest> {
        let map = headers(pairs);
        checked(&map).map(|t| t.map(str::to_owned))
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
        // A malformed first token is refused as such, before the repetition.
        assert_eq!(
            defaults(&[
                ("authorization", "Bearer a.b c"),
                ("authorization", "Bearer d.e.f")
            ]),
            Err(InvalidRequest::MalformedCredentials)
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
        assert_eq!(checked(&map), Err(InvalidRequest::MalformedCredentials));
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

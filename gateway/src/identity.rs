//! The identity headers: what an upstream (proxy mode) or the asking proxy
//! (forward-auth mode) learns about the verified user.
//!
//! | header | value |
//! | --- | --- |
//! | `X-Auth-Request-User` | `sub` |
//! | `X-Auth-Request-Email` | e-mail (omitted when none) |
//! | `X-Auth-Request-Preferred-Username` | username (omitted when none) |
//! | `X-Auth-Request-Groups` | team ids, comma-separated (omitted when none) |
//! | `X-meinGPT-Org-Id` | the audience the token was accepted for |
//! | `X-meinGPT-Role` | the role (omitted when none) |
//! | `X-meinGPT-Claims` | base64url (no padding) of the payload exactly as signed |
//!
//! Text values are percent-encoded as UTF-8 outside printable ASCII, and `%`
//! itself is encoded, so a value decodes unambiguously; in team ids `,` is
//! encoded too.
//!
//! Client-sent copies are removed under every spelling: HTTP header names
//! ignore case, and CGI, WSGI (PEP 3333), PHP and Rails read `_` as `-`, so
//! `X_Auth_Request_User` reaches such an app as `X-Auth-Request-User`.

use http::header::{self, HeaderMap, HeaderName, HeaderValue};
use meingpt_auth::MeinGptUser;
use percent_encoding::{AsciiSet, CONTROLS, utf8_percent_encode};

/// `X-Auth-Request-User`: the user's `sub`.
pub(crate) const USER: HeaderName = HeaderName::from_static("x-auth-request-user");
/// `X-Auth-Request-Email`.
pub(crate) const EMAIL: HeaderName = HeaderName::from_static("x-auth-request-email");
/// `X-Auth-Request-Preferred-Username`.
pub(crate) const PREFERRED_USERNAME: HeaderName =
    HeaderName::from_static("x-auth-request-preferred-username");
/// `X-Auth-Request-Groups`: team ids, comma-separated.
pub(crate) const GROUPS: HeaderName = HeaderName::from_static("x-auth-request-groups");
/// `X-meinGPT-Org-Id`: the organization (audience) the token was accepted for.
pub(crate) const ORG_ID: HeaderName = HeaderName::from_static("x-meingpt-org-id");
/// `X-meinGPT-Role`.
pub(crate) const ROLE: HeaderName = HeaderName::from_static("x-meingpt-role");
/// `X-meinGPT-Claims`: the token's payload segment, exactly as signed.
pub(crate) const CLAIMS: HeaderName = HeaderName::from_static("x-meingpt-claims");

/// Every identity header; client-sent copies of all of them are removed.
pub(crate) const IDENTITY_HEADERS: [HeaderName; 7] = [
    USER,
    EMAIL,
    PREFERRED_USERNAME,
    GROUPS,
    ORG_ID,
    ROLE,
    CLAIMS,
];

/// `X-meinGPT-JWT`, the token header (`Authorization` has no `-` to respell).
pub(crate) const TOKEN: HeaderName = meingpt_auth::MEINGPT_JWT_HEADER;

/// Hop-by-hop headers (RFC 9110 §7.6.1, plus the ones proxies treat so).
const HOP_BY_HOP: [HeaderName; 8] = [
    header::CONNECTION,
    HeaderName::from_static("keep-alive"),
    header::PROXY_AUTHENTICATE,
    header::PROXY_AUTHORIZATION,
    header::TE,
    header::TRAILER,
    header::TRANSFER_ENCODING,
    header::UPGRADE,
];

/// Bytes encoded in text values: controls, non-ASCII (always), `%`.
const TEXT: &AsciiSet = &CONTROLS.add(b'%');
/// In the comma-separated team list, `,` as well.
const LIST_ITEM: &AsciiSet = &TEXT.add(b',');

/// Whether `name` is one of the identity headers, in any spelling
/// (`X_Auth_Request_User` too).
pub(crate) fn is_identity_header(name: &HeaderName) -> bool {
    IDENTITY_HEADERS
        .iter()
        .any(|identity| reads_as(name.as_str(), identity.as_str()))
}

/// Whether `name` is `canonical` once ASCII case is ignored and `_` is
/// read as `-`, as CGI-style servers read header names.
pub(crate) fn reads_as(name: &str, canonical: &str) -> bool {
    let (name, canonical) = (name.as_bytes(), canonical.as_bytes());
    name.len() == canonical.len()
        && name.iter().zip(canonical).all(|(&byte, &expected)| {
            byte.eq_ignore_ascii_case(&expected) || (byte == b'_' && expected == b'-')
        })
}

/// Removes every header spelled with `_` where one of `names` has `-`
/// (`x_auth_request_user` for `X-Auth-Request-User`): an upstream that reads
/// `_` as `-` would take it for that header. The exact names are left to
/// the caller. A request without `_` in any header name costs one byte scan
/// per name; nothing is allocated unless a header is removed.
pub(crate) fn remove_underscore_spellings(headers: &mut HeaderMap, names: &[HeaderName]) {
    let mut respelled: Vec<HeaderName> = Vec::new();
    for name in headers.keys() {
        let spelled = name.as_str();
        if spelled.as_bytes().contains(&b'_') && names.iter().any(|n| reads_as(spelled, n.as_str()))
        {
            respelled.push(name.clone());
        }
    }
    for name in &respelled {
        headers.remove(name);
    }
}

/// Whether `name` is a hop-by-hop header.
pub(crate) fn is_hop_by_hop(name: &HeaderName) -> bool {
    HOP_BY_HOP.contains(name)
}

/// Removes every identity header.
pub(crate) fn remove_identity(headers: &mut HeaderMap) {
    remove_named(headers, &IDENTITY_HEADERS);
}

/// Removes the headers of `names`. Looks at each header of the request
/// once instead of looking each name up (most requests have none of them).
fn remove_named(headers: &mut HeaderMap, names: &[HeaderName]) {
    let found: Vec<HeaderName> = headers
        .keys()
        .filter(|name| names.contains(name))
        .cloned()
        .collect();
    for name in found {
        headers.remove(name);
    }
}

/// Removes the hop-by-hop headers and every header `Connection` names.
pub(crate) fn remove_hop_by_hop(headers: &mut HeaderMap) {
    // The headers present that `Connection` names (`close` and
    // `keep-alive` usually name none), found without parsing the names.
    let named: Vec<HeaderName> = headers
        .get_all(header::CONNECTION)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(','))
        .map(str::trim)
        .flat_map(|token| {
            headers
                .keys()
                .filter(move |name| name.as_str().eq_ignore_ascii_case(token))
        })
        .cloned()
        .collect();
    for name in named {
        headers.remove(name);
    }
    remove_named(headers, &HOP_BY_HOP);
}

/// Removes the headers a token may be carried in (`X-meinGPT-JWT`,
/// `Authorization`).
pub(crate) fn remove_token(headers: &mut HeaderMap) {
    headers.remove(TOKEN);
    headers.remove(header::AUTHORIZATION);
}

/// Sets the identity headers for `user`.
pub(crate) fn insert_identity(headers: &mut HeaderMap, user: &MeinGptUser) {
    remove_identity(headers);
    // One growth of the map, not one per header (an answer's map is empty).
    headers.reserve(IDENTITY_HEADERS.len());
    headers.insert(USER, text(user.sub()));
    if let Some(email) = user.email() {
        headers.insert(EMAIL, text(email));
    }
    if let Some(username) = user.username() {
        headers.insert(PREFERRED_USERNAME, text(username));
    }
    if !user.teams().is_empty() {
        let mut groups = String::new();
        for (index, team) in user.teams().iter().enumerate() {
            if index > 0 {
                groups.push(',');
            }
            groups.extend(utf8_percent_encode(&team.id, LIST_ITEM));
        }
        headers.insert(GROUPS, value(groups));
    }
    headers.insert(ORG_ID, text(user.organization_id()));
    if let Some(role) = user.role() {
        headers.insert(ROLE, text(role.as_str()));
    }
    // The payload segment is base64url: always a valid header value.
    if let Ok(payload) = HeaderValue::from_str(user.payload_segment()) {
        headers.insert(CLAIMS, payload);
    }
}

fn text(s: &str) -> HeaderValue {
    // Most values have nothing to encode: copied as they are.
    if s.bytes().all(|b| (b' '..=b'~').contains(&b) && b != b'%')
        && let Ok(value) = HeaderValue::from_str(s)
    {
        return value;
    }
    value(utf8_percent_encode(s, TEXT).to_string())
}

fn value(s: String) -> HeaderValue {
    // Percent-encoding leaves only printable ASCII and spaces.
    HeaderValue::try_from(s).unwrap_or_else(|_| HeaderValue::from_static(""))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn non_ascii_text_is_percent_encoded_as_utf8() {
        assert_eq!(text("Jürgen Groß"), "J%C3%BCrgen Gro%C3%9F");
        assert_eq!(text("100%"), "100%25");
        assert_eq!(text("a\r\nb"), "a%0D%0Ab");
        assert_eq!(text("a\u{7f}b"), "a%7Fb");
        assert_eq!(text("Ada Admin ~!"), "Ada Admin ~!");
    }

    #[test]
    fn underscores_read_as_dashes_and_case_is_ignored() {
        assert!(reads_as("x_auth_request_user", USER.as_str()));
        assert!(reads_as("X_Auth-Request_User", USER.as_str()));
        assert!(reads_as("x-auth-request-user", USER.as_str()));
        assert!(!reads_as("x_auth_request_userx", USER.as_str()));
        assert!(!reads_as("x.auth.request.user", USER.as_str()));
        assert!(is_identity_header(&HeaderName::from_static(
            "x_meingpt_role"
        )));
        assert!(!is_identity_header(&HeaderName::from_static(
            "x_meingpt_jwt"
        )));
    }

    #[test]
    fn underscore_spellings_of_the_named_headers_are_removed() {
        let mut headers = HeaderMap::new();
        for name in ["x_auth_request_user", "x-meingpt_jwt", "x_request_id"] {
            headers.insert(
                HeaderName::from_bytes(name.as_bytes()).unwrap(),
                HeaderValue::from_static("1"),
            );
        }
        headers.insert(USER, HeaderValue::from_static("exact"));
        remove_underscore_spellings(&mut headers, &[USER, TOKEN]);
        let mut left: Vec<&str> = headers.keys().map(HeaderName::as_str).collect();
        left.sort_unstable();
        assert_eq!(left, ["x-auth-request-user", "x_request_id"]);
    }

    #[test]
    fn connection_named_headers_are_removed() {
        let mut headers = HeaderMap::new();
        headers.insert(
            header::CONNECTION,
            HeaderValue::from_static("close, x-secret"),
        );
        headers.insert("x-secret", HeaderValue::from_static("1"));
        headers.insert("x-kept", HeaderValue::from_static("1"));
        headers.insert(header::TE, HeaderValue::from_static("trailers"));
        remove_hop_by_hop(&mut headers);
        assert_eq!(headers.len(), 1);
        assert!(headers.contains_key("x-kept"));
    }
}

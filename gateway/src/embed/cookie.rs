//! The session cookie: its name and attributes, how it leaves the request
//! before the upstream sees it, and how the upstream's own cookies are made
//! to work inside meinGPT's frame.
//!
//! The cookie holds the token itself, so that any replica can verify it
//! without shared state. Its attributes:
//!
//! - `__Host-` name, `Path=/`, `Secure`, no `Domain`: only this host, over
//!   HTTPS, can set or read it; a sibling subdomain cannot plant one;
//! - `HttpOnly`: no script (the app's or an injected one) can read it;
//! - `SameSite=None; Partitioned` (CHIPS): sent inside meinGPT's frame, and
//!   kept in a jar of meinGPT's site only, so browsers that block
//!   third-party cookies keep it and no other site's frame of the app sees
//!   it;
//! - `Max-Age`: the token's remaining lifetime; the browser forgets it when
//!   the token expires.

use std::time::Duration;

use http::header::{COOKIE, SET_COOKIE};
use http::{HeaderMap, HeaderValue};

/// The session cookie's name.
pub const SESSION_COOKIE: &str = "__Host-meingpt-session";

/// The attributes every session cookie carries (the clearing one too, so
/// that it replaces the cookie it clears).
const ATTRIBUTES: &str = "Path=/; Secure; HttpOnly; SameSite=None; Partitioned";

/// `Set-Cookie` for a session holding `token`, for `remaining` (whole
/// seconds, rounded down so the cookie never outlives the token).
pub fn session(token: &str, remaining: Duration) -> Option<HeaderValue> {
    let value = format!(
        "{SESSION_COOKIE}={token}; {ATTRIBUTES}; Max-Age={}",
        remaining.as_secs()
    );
    HeaderValue::try_from(value).ok()
}

/// `Set-Cookie` that removes the session cookie.
pub fn cleared() -> HeaderValue {
    HeaderValue::from_static(
        "__Host-meingpt-session=; Path=/; Secure; HttpOnly; SameSite=None; Partitioned; Max-Age=0",
    )
}

/// Whether `headers` carry the session cookie (well-formed or not).
pub fn is_carried(headers: &HeaderMap) -> bool {
    headers
        .get_all(COOKIE)
        .iter()
        .any(|value| pairs(value.as_bytes()).any(is_session))
}

/// Removes the session cookie from the `Cookie` headers, keeping every
/// other cookie in its order; a header left empty is removed. Returns
/// whether a session cookie was there.
pub fn remove(headers: &mut HeaderMap) -> bool {
    if !is_carried(headers) {
        return false;
    }
    let kept: Vec<HeaderValue> = headers
        .get_all(COOKIE)
        .iter()
        .filter_map(|value| {
            let others: Vec<&[u8]> = pairs(value.as_bytes())
                .filter(|pair| !is_session(pair) && !pair.is_empty())
                .collect();
            if others.is_empty() {
                return None;
            }
            HeaderValue::from_bytes(&others.join(&b"; "[..])).ok()
        })
        .collect();
    headers.remove(COOKIE);
    for value in kept {
        headers.append(COOKIE, value);
    }
    true
}

/// The `name=value` pairs of a `Cookie` header, trimmed.
fn pairs(value: &[u8]) -> impl Iterator<Item = &[u8]> {
    value.split(|b| *b == b';').map(<[u8]>::trim_ascii)
}

fn is_session(pair: &[u8]) -> bool {
    let name = pair
        .iter()
        .position(|b| *b == b'=')
        .map_or(pair, |eq| &pair[..eq]);
    name.trim_ascii() == SESSION_COOKIE.as_bytes()
}

/// Makes the upstream's own cookies work inside meinGPT's frame: every
/// `Set-Cookie` gets `Secure; SameSite=None; Partitioned` in place of
/// its own `SameSite`, `Secure` and `Partitioned` attributes (a browser
/// sends a `Lax` or `Strict` cookie to no cross-site frame, and keeps an
/// unpartitioned third-party one only where third-party cookies are
/// allowed).
pub fn partition_upstream_cookies(headers: &mut HeaderMap) {
    if !headers.contains_key(SET_COOKIE) {
        return;
    }
    let rewritten: Vec<HeaderValue> = headers
        .get_all(SET_COOKIE)
        .iter()
        .filter_map(|value| {
            let mut parts = value.as_bytes().split(|b| *b == b';');
            let first = parts.next()?.trim_ascii();
            let mut out = first.to_vec();
            for attribute in parts.map(<[u8]>::trim_ascii) {
                let name = attribute
                    .iter()
                    .position(|b| *b == b'=')
                    .map_or(attribute, |eq| &attribute[..eq])
                    .trim_ascii();
                let replaced = [&b"samesite"[..], b"secure", b"partitioned"]
                    .iter()
                    .any(|known| name.eq_ignore_ascii_case(known));
                if !replaced && !attribute.is_empty() {
                    out.extend_from_slice(b"; ");
                    out.extend_from_slice(attribute);
                }
            }
            out.extend_from_slice(b"; Secure; SameSite=None; Partitioned");
            HeaderValue::from_bytes(&out).ok()
        })
        .collect();
    headers.remove(SET_COOKIE);
    for value in rewritten {
        headers.append(SET_COOKIE, value);
    }
}

/// Removes any `Set-Cookie` of the upstream's for the session cookie: the
/// session is the gateway's alone to set, so an upstream cannot fix a
/// user to another's session.
pub fn remove_upstream_session(headers: &mut HeaderMap) {
    if !headers
        .get_all(SET_COOKIE)
        .iter()
        .any(|value| sets_session(value.as_bytes()))
    {
        return;
    }
    let kept: Vec<HeaderValue> = headers
        .get_all(SET_COOKIE)
        .iter()
        .filter(|value| !sets_session(value.as_bytes()))
        .cloned()
        .collect();
    headers.remove(SET_COOKIE);
    for value in kept {
        headers.append(SET_COOKIE, value);
    }
}

fn sets_session(value: &[u8]) -> bool {
    let first = value.split(|b| *b == b';').next().unwrap_or_default();
    // Cookie names are case-sensitive, but a browser that folds the
    // prefix's case would still guard it: refuse every spelling.
    let name = first
        .iter()
        .position(|b| *b == b'=')
        .map_or(first, |eq| &first[..eq])
        .trim_ascii();
    name.eq_ignore_ascii_case(SESSION_COOKIE.as_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cookies(values: &[&'static str]) -> HeaderMap {
        let mut headers = HeaderMap::new();
        for value in values {
            headers.append(COOKIE, HeaderValue::from_static(value));
        }
        headers
    }

    #[test]
    fn the_session_cookie_has_every_attribute_and_the_remaining_lifetime() {
        let value = session("a.b.c", Duration::from_millis(59_900)).unwrap();
        assert_eq!(
            value,
            "__Host-meingpt-session=a.b.c; Path=/; Secure; HttpOnly; SameSite=None; \
             Partitioned; Max-Age=59"
        );
        assert!(
            cleared()
                .to_str()
                .unwrap()
                .starts_with("__Host-meingpt-session=; Path=/; Secure")
        );
    }

    #[test]
    fn only_the_session_cookie_is_removed() {
        let mut headers = cookies(&[
            "theme=dark; __Host-meingpt-session=a.b.c; _xsrf=1",
            "__Host-meingpt-session=d.e.f",
        ]);
        assert!(remove(&mut headers));
        let left: Vec<_> = headers.get_all(COOKIE).iter().collect();
        assert_eq!(left, ["theme=dark; _xsrf=1"]);

        let mut headers = cookies(&["theme=dark"]);
        assert!(!remove(&mut headers));
        assert_eq!(headers[COOKIE], "theme=dark");
        // A longer name is another cookie.
        assert!(!is_carried(&cookies(&["__Host-meingpt-sessionx=1"])));
    }

    #[test]
    fn upstream_cookies_become_partitioned_third_party_cookies() {
        let mut headers = HeaderMap::new();
        headers.append(
            SET_COOKIE,
            HeaderValue::from_static("_xsrf=2|ab; Path=/; SameSite=Lax"),
        );
        headers.append(
            SET_COOKIE,
            HeaderValue::from_static("id=1; secure; HttpOnly; partitioned; Max-Age=60"),
        );
        partition_upstream_cookies(&mut headers);
        let values: Vec<_> = headers.get_all(SET_COOKIE).iter().collect();
        assert_eq!(
            values,
            [
                "_xsrf=2|ab; Path=/; Secure; SameSite=None; Partitioned",
                "id=1; HttpOnly; Max-Age=60; Secure; SameSite=None; Partitioned",
            ]
        );
    }

    #[test]
    fn an_upstream_cannot_set_the_session_cookie() {
        let mut headers = HeaderMap::new();
        headers.append(
            SET_COOKIE,
            HeaderValue::from_static("__host-meingpt-session=x.y.z; Path=/"),
        );
        headers.append(SET_COOKIE, HeaderValue::from_static("a=1"));
        remove_upstream_session(&mut headers);
        let values: Vec<_> = headers.get_all(SET_COOKIE).iter().collect();
        assert_eq!(values, ["a=1"]);
    }
}

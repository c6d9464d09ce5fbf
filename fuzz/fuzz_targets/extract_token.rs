//! Arbitrary header values: token extraction never panics, and a token it
//! returns is a well-formed RFC 6750 b64token.
#![no_main]

use http::{HeaderMap, HeaderName, HeaderValue};
use libfuzzer_sys::fuzz_target;
use meingpt_auth::TokenSource;

fuzz_target!(|data: &[u8]| {
    let mut headers = HeaderMap::new();
    // Up to four values, split at 0xff bytes, spread over the headers the
    // default sources read plus a cookie.
    let names = ["authorization", "x-meingpt-jwt", "authorization", "cookie"];
    for (value, name) in data.split(|b| *b == 0xff).zip(names) {
        if let Ok(value) = HeaderValue::from_bytes(value) {
            headers.append(HeaderName::from_static(name), value);
        }
    }
    let sources = [
        TokenSource::MeinGptHeader,
        TokenSource::AuthorizationBearer,
        TokenSource::Cookie("session".into()),
    ];
    for source in &sources {
        if let Ok(Some(token)) = source.find(&headers) {
            assert!(!token.is_empty());
            assert!(token.bytes().all(|b| b.is_ascii_graphic()));
        }
    }
});

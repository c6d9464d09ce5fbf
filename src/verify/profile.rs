//! The optional access-token profile: `typ`, `azp` and the maximum
//! lifetime, checked for issuers whose configuration asks.

use std::time::Duration;

use crate::json::Member;

/// Optional access-token profile checks (RFC 9068 and common practice for
/// OpenID Connect issuers); each is off unless configured.
#[derive(Debug, Clone, Default)]
pub(crate) struct TokenProfile {
    /// The required `typ` header (such as `at+jwt`), compared ignoring ASCII
    /// case and an `application/` prefix.
    pub(crate) token_type: Option<String>,
    /// `azp` must equal one of these.
    pub(crate) authorized_parties: Vec<String>,
    /// `exp - iat` must not exceed this; `iat` becomes required.
    pub(crate) max_lifetime: Option<Duration>,
}

impl TokenProfile {
    /// Whether the `typ` header value `typ` is the required type.
    pub(super) fn type_matches(&self, typ: &Member<String>) -> bool {
        let Some(required) = &self.token_type else {
            return true;
        };
        let Member::Present(typ) = typ else {
            return false;
        };
        media_type(typ).eq_ignore_ascii_case(media_type(required))
    }
}

/// A media type without its optional `application/` prefix (RFC 7515 §4.1.9).
fn media_type(name: &str) -> &str {
    match name.get(..12) {
        Some(prefix) if prefix.eq_ignore_ascii_case("application/") => &name[12..],
        _ => name,
    }
}

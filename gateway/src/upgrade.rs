//! Protocol upgrades (RFC 9110 §7.8): which protocols a route lets a client
//! switch to, and whether an upstream's `101` switched to one of those.
//!
//! A request offers protocols with `Connection: upgrade` and
//! `Upgrade: websocket` (or `h2c`, or a list). A route passes the offer on
//! only when it lists every protocol offered, by name (ASCII case ignored,
//! any `/version`); by default it lists `websocket` alone. Any other offer is
//! dropped and the request forwarded as the plain HTTP/1.1 request it also
//! is, as RFC 9110 lets a server ignore `Upgrade` (a client offering `h2c`
//! goes on in HTTP/1.1). Tunnelling a protocol the route did not list would
//! let a client talk to the upstream past every check: after a `101`, the
//! gateway only copies bytes.

use http::header::{self, HeaderMap, HeaderValue};

/// The protocols a route lets a client upgrade to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Upgrades {
    /// Lowercase protocol names.
    protocols: Vec<String>,
}

impl Default for Upgrades {
    /// `websocket` only.
    fn default() -> Self {
        Self {
            protocols: vec!["websocket".to_owned()],
        }
    }
}

impl Upgrades {
    /// The protocols named in `names`; the error says which name is not a
    /// protocol name (an RFC 9110 token, without `/version`).
    pub fn new<I, N>(names: I) -> Result<Self, String>
    where
        I: IntoIterator<Item = N>,
        N: AsRef<str>,
    {
        let mut protocols = Vec::new();
        for name in names {
            let name = name.as_ref();
            if name.is_empty() || !name.bytes().all(is_token_byte) {
                return Err(format!(
                    "{name:?} is not a protocol name (such as \"websocket\")"
                ));
            }
            protocols.push(name.to_ascii_lowercase());
        }
        Ok(Self { protocols })
    }

    /// Whether the route lets every protocol in `offer` through.
    pub fn allows(&self, offer: &HeaderValue) -> bool {
        let mut names = protocol_names(offer).peekable();
        names.peek().is_some()
            && names.all(|name| self.protocols.iter().any(|p| p.eq_ignore_ascii_case(name)))
    }
}

/// The `Upgrade` value of a request that asks to upgrade (`Connection`
/// names `upgrade`), if it does.
pub fn offered(headers: &HeaderMap) -> Option<&HeaderValue> {
    let asks = headers
        .get_all(header::CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|token| token.trim().eq_ignore_ascii_case("upgrade"));
    if asks {
        headers.get(header::UPGRADE)
    } else {
        None
    }
}

/// Whether an upstream's `101` with `answer` as its `Upgrade` switched to
/// a protocol of `offer`.
pub fn answers(offer: &HeaderValue, answer: Option<&HeaderValue>) -> bool {
    let Some(answer) = answer else {
        return false;
    };
    let mut answered = protocol_names(answer);
    match (answered.next(), answered.next()) {
        (Some(chosen), None) => protocol_names(offer).any(|name| name.eq_ignore_ascii_case(chosen)),
        _ => false,
    }
}

/// The protocol names of an `Upgrade` value (`foo/2, bar` → `foo`, `bar`);
/// nothing when the value is not visible ASCII.
fn protocol_names(value: &HeaderValue) -> impl Iterator<Item = &str> {
    value
        .to_str()
        .unwrap_or("")
        .split(',')
        .map(|protocol| protocol.split('/').next().unwrap_or("").trim())
        .filter(|name| !name.is_empty())
}

/// `tchar` of RFC 9110 §5.6.2.
fn is_token_byte(byte: u8) -> bool {
    byte.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&byte)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn value(s: &'static str) -> HeaderValue {
        HeaderValue::from_static(s)
    }

    #[test]
    fn websocket_alone_passes_by_default() {
        let upgrades = Upgrades::default();
        assert!(upgrades.allows(&value("websocket")));
        assert!(upgrades.allows(&value("WebSocket")));
        assert!(!upgrades.allows(&value("h2c")));
        assert!(!upgrades.allows(&value("websocket, h2c")));
        assert!(!upgrades.allows(&value("")));
        assert!(!upgrades.allows(&value(" , ")));
    }

    #[test]
    fn a_route_can_list_other_protocols_and_none() {
        let upgrades = Upgrades::new(["websocket", "H2C"]).unwrap();
        assert!(upgrades.allows(&value("h2c")));
        assert!(upgrades.allows(&value("websocket, h2c")));
        assert!(!Upgrades::new([""; 0]).unwrap().allows(&value("websocket")));
        assert!(Upgrades::new(["web socket"]).is_err());
        assert!(Upgrades::new(["h2c/1"]).is_err());
    }

    #[test]
    fn an_upgrade_is_offered_only_with_connection_upgrade() {
        let mut headers = HeaderMap::new();
        headers.insert(header::UPGRADE, value("websocket"));
        assert_eq!(offered(&headers), None);
        headers.insert(header::CONNECTION, value("keep-alive, Upgrade"));
        assert_eq!(offered(&headers), Some(&value("websocket")));
    }

    #[test]
    fn the_answer_must_be_one_protocol_of_the_offer() {
        assert!(answers(&value("websocket"), Some(&value("WebSocket"))));
        assert!(answers(&value("foo/2, bar"), Some(&value("bar"))));
        assert!(!answers(&value("websocket"), Some(&value("h2c"))));
        assert!(!answers(
            &value("websocket"),
            Some(&value("websocket, h2c"))
        ));
        assert!(!answers(&value("websocket"), None));
    }
}

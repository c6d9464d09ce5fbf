//! The `Host` rule (RFC 9112 §3.2): an HTTP/1.1 request has exactly one
//! `Host`, a `host[:port]`; and a `Host` names the host of the request's
//! target when the target names one (an absolute-form target, HTTP/2's
//! `:authority`).
//!
//! Two `Host` headers are two answers to "which site is this for": a proxy
//! in front may route by one and the upstream serve by the other.

use http::header::{self, HeaderValue};
use http::{Request, Version};

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
    /// The fixed description the `400` answer carries.
    pub fn description(self) -> &'static str {
        match self {
            BadHost::Missing => "no Host header",
            BadHost::Repeated => "more than one Host header",
            BadHost::Malformed => "Host is not host[:port]",
            BadHost::Disagrees => "Host names another host than the request target",
        }
    }
}

/// Checks a request's `Host` as RFC 9112 §3.2 and RFC 9113 §8.3.1 ask.
pub(crate) fn check_host<B>(request: &Request<B>) -> Result<(), BadHost> {
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
            check_host(&request(Version::HTTP_11, "/", &[])),
            Err(BadHost::Missing)
        );
        assert_eq!(
            check_host(&request(Version::HTTP_11, "/", &["a", "b"])),
            Err(BadHost::Repeated)
        );
        assert_eq!(
            check_host(&request(Version::HTTP_11, "/", &["a", "a"])),
            Err(BadHost::Repeated)
        );
        assert_eq!(check_host(&request(Version::HTTP_11, "/", &["a"])), Ok(()));
        assert_eq!(check_host(&request(Version::HTTP_10, "/", &[])), Ok(()));
        assert_eq!(
            check_host(&request(Version::HTTP_2, "http://a/", &[])),
            Ok(())
        );
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
                check_host(&request(Version::HTTP_11, "/", &[good])),
                Ok(()),
                "{good}"
            );
        }
        for bad in [
            "", ":80", "a:", "a:xyz", "a:99999", "a:123456", "user@a", "a,b", "a;b", "a%41", "[]",
            "[::1", "[::1]x", "[zz]", "a:1:2",
        ] {
            assert_eq!(
                check_host(&request(Version::HTTP_11, "/", &[bad])),
                Err(BadHost::Malformed),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn host_must_name_the_host_of_an_absolute_target() {
        let absolute = |host| request(Version::HTTP_11, "http://app.example.com:8080/x", &[host]);
        assert_eq!(check_host(&absolute("APP.example.com:8080")), Ok(()));
        assert_eq!(check_host(&absolute("app.example.com")), Ok(()));
        assert_eq!(
            check_host(&absolute("admin.example.com")),
            Err(BadHost::Disagrees)
        );
        assert_eq!(
            check_host(&absolute("app.example.com:8081")),
            Err(BadHost::Disagrees)
        );
    }
}

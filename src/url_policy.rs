//! The URL policy: `https://`, or `http://` to a loopback host only, never
//! with credentials. It holds for everything keys are fetched from (the
//! configured issuer and JWKS URLs, and a `jwks_uri` a discovery document
//! names) and for the origins allowed to frame a Custom AI App.

use std::fmt;
use std::net::IpAddr;

use reqwest::Url;

/// A URL the policy refuses; the configuration names the setting it came
/// from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct UrlError {
    /// What is wrong with the URL, as one phrase.
    pub(crate) reason: String,
}

impl UrlError {
    fn new(reason: impl Into<String>) -> Self {
        Self {
            reason: reason.into(),
        }
    }
}

impl fmt::Display for UrlError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.reason)
    }
}

/// Parses a URL that keys or discovery may be fetched from: `https://`, or
/// `http://` to a loopback host only.
pub(crate) fn checked_url(raw: &str) -> Result<Url, UrlError> {
    let url = Url::parse(raw).map_err(|error| {
        let found = match error {
            url::ParseError::RelativeUrlWithoutBase => "a relative URL (no scheme)".to_owned(),
            other => format!("a URL that does not parse ({other})"),
        };
        UrlError::new(format!(
            "expected an absolute https:// URL such as https://app.meingpt.com \
             (http:// only for loopback hosts), found {found}"
        ))
    })?;
    if !url.username().is_empty() || url.password().is_some() {
        return Err(UrlError::new("credentials in URLs are not allowed"));
    }
    match url.scheme() {
        "https" => Ok(url),
        "http" if is_loopback(&url) => Ok(url),
        "http" => Err(UrlError::new(
            "plain http:// is only allowed for loopback hosts; use https://",
        )),
        other => Err(UrlError::new(format!(
            "scheme {other}:// is not supported; use https://"
        ))),
    }
}

/// Whether `url` names this machine (`localhost` or a loopback address).
pub(crate) fn is_loopback(url: &Url) -> bool {
    match url.host() {
        Some(url::Host::Domain(domain)) => domain.eq_ignore_ascii_case("localhost"),
        Some(url::Host::Ipv4(ip)) => IpAddr::V4(ip).is_loopback(),
        Some(url::Host::Ipv6(ip)) => IpAddr::V6(ip).is_loopback(),
        None => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_http_is_refused_unless_loopback() {
        assert!(checked_url("https://app.meingpt.com").is_ok());
        assert!(checked_url("http://127.0.0.1:8080/jwks").is_ok());
        assert!(checked_url("http://[::1]:8080/jwks").is_ok());
        assert!(checked_url("http://localhost/jwks").is_ok());
        assert!(checked_url("http://app.meingpt.com").is_err());
        assert!(checked_url("http://10.0.0.1/jwks").is_err());
        assert!(checked_url("ftp://x/jwks").is_err());
        assert!(checked_url("https://user:pw@x/jwks").is_err());
        assert!(checked_url("not a url").is_err());
    }
}

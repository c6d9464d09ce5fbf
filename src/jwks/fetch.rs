//! The HTTP policy of key fetches: one timeout over the whole fetch (body
//! included), a body size cap, no redirects, status `200` only. HTTPS only
//! (loopback excepted) is checked where URLs are configured or discovered.
//!
//! The policy is the crate's, whichever client sends the request: with an
//! application's own client (a proxy, a client certificate, private roots)
//! the timeout around the whole fetch, the size cap, status `200` only and
//! the refusal of any answer that did not come from the requested URL
//! still hold. Only what happens inside the client is the client's: its
//! connect timeout, and whether it follows a redirect at all before the
//! answer is refused (built with `redirect::Policy::none()` it does not).

use std::fmt;
use std::time::Duration;

use reqwest::Url;

use super::JwksSettings;
use super::document::DocumentError;

/// Why a fetch produced no document. Never carries the body, and never the
/// URL (the caller names it once).
#[derive(Debug)]
pub(crate) enum FetchError {
    Status(u16),
    TooLarge(usize),
    TimedOut(Duration),
    Redirected,
    Transport(reqwest::Error),
    Document(DocumentError),
    /// The fetch's task ended before the fetch did (its runtime shut down).
    Cancelled,
}

impl From<DocumentError> for FetchError {
    fn from(error: DocumentError) -> Self {
        Self::Document(error)
    }
}

impl fmt::Display for FetchError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Status(code) => write!(f, "the issuer answered HTTP {code}"),
            Self::TooLarge(cap) => write!(f, "the answer is larger than {cap} bytes"),
            Self::TimedOut(after) => write!(f, "no complete answer within {after:?}"),
            Self::Cancelled => write!(f, "the fetch was cancelled"),
            Self::Redirected => write!(
                f,
                "the answer came from another URL (a redirect was followed); \
                 redirects are refused"
            ),
            Self::Transport(error) => {
                // reqwest's own message ("error decoding response body") does
                // not say what went wrong; its sources do.
                write!(f, "{error}")?;
                let mut cause = std::error::Error::source(error);
                while let Some(inner) = cause {
                    write!(f, ": {inner}")?;
                    cause = inner.source();
                }
                Ok(())
            }
            Self::Document(error) => error.fmt(f),
        }
    }
}

/// Fetches JWKS and discovery documents under the policy above.
pub(crate) struct Fetcher {
    client: reqwest::Client,
    /// Whether `client` is the crate's own, whose timeout is `timeout`.
    own_client: bool,
    timeout: Duration,
    max_size: usize,
}

impl Fetcher {
    pub(crate) fn new(settings: &JwksSettings) -> Result<Self, reqwest::Error> {
        let (client, own_client) = match &settings.client {
            Some(client) => (client.clone(), false),
            None => {
                let client = reqwest::Client::builder()
                    .redirect(reqwest::redirect::Policy::none())
                    .timeout(settings.timeout)
                    .connect_timeout(settings.timeout)
                    .user_agent(concat!("meingpt-auth/", env!("CARGO_PKG_VERSION")))
                    .tls_certs_merge(settings.extra_roots.iter().cloned())
                    .build()?;
                (client, true)
            }
        };
        Ok(Self {
            client,
            own_client,
            timeout: settings.timeout,
            max_size: settings.max_size,
        })
    }

    /// The whole body at `url`, or why there is none.
    pub(crate) async fn body(&self, url: &Url) -> Result<Vec<u8>, FetchError> {
        let cap = self.max_size;
        // The crate's client has the same timeout as the one around the
        // whole fetch; whichever fires first, a timeout is reported as one.
        // An application's client times out on its own terms, reported as
        // its error. The URL is dropped from reqwest's errors: the caller
        // names it.
        let transport = |error: reqwest::Error| {
            if error.is_timeout() && self.own_client {
                FetchError::TimedOut(self.timeout)
            } else {
                FetchError::Transport(error.without_url())
            }
        };
        let mut response = self
            .client
            .get(url.clone())
            .header(
                http::header::ACCEPT,
                "application/jwk-set+json, application/json",
            )
            .send()
            .await
            .map_err(transport)?;
        // A client that follows redirects answers for another URL: refused,
        // as a redirect is with the crate's own client (status 3xx).
        if response.url() != url {
            return Err(FetchError::Redirected);
        }
        if response.status() != http::StatusCode::OK {
            return Err(FetchError::Status(response.status().as_u16()));
        }
        if response
            .content_length()
            .is_some_and(|len| len > cap as u64)
        {
            return Err(FetchError::TooLarge(cap));
        }
        let mut body = Vec::new();
        while let Some(chunk) = response.chunk().await.map_err(transport)? {
            if body.len() + chunk.len() > cap {
                return Err(FetchError::TooLarge(cap));
            }
            body.extend_from_slice(&chunk);
        }
        Ok(body)
    }
}

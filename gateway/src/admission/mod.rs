//! Request admission: what a request must be before the gateway decides on
//! it, so that the decision is about exactly the request the upstream will
//! serve.
//!
//! - [`RequestPath`]: the path, percent-decoded once; routes are matched on
//!   that one decoding, and paths an upstream could read as another path
//!   (dot segments, also `..;x`; empty segments; backslashes, control
//!   characters, double encoding) are refused.
//! - [`OriginalRequest`]: forward auth's original URI and method, each read
//!   from one configured header ([`OriginalRequestHeaders`]); repeated or
//!   disagreeing spellings are refused.
//! - [`TrustedProxies`]: who may ask forward auth at all, and whose
//!   forwarding headers an upstream gets.
//! - The `Host` rule (RFC 9112 §3.2, [`BadHost`]): exactly one `Host`, a
//!   `host[:port]` that agrees with the request's target.
//!
//! Each is a pure function of a `&str`, a `&HeaderMap` or a request's head
//! with a typed result; a refusal is a [`Refusal`], answered `400`.

mod host;
mod original;
mod path;
mod peers;

pub use host::BadHost;
pub(crate) use host::check_host;

pub use original::{
    METHOD_SPELLINGS, OriginalRequest, OriginalRequestHeaders, URI_SPELLINGS,
    remove_original_request_headers,
};
pub use path::RequestPath;
pub use peers::TrustedProxies;

/// Why a request is refused before any decision is made about it (`400`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Refusal {
    /// The path does not start with `/`.
    PathNotAbsolute,
    /// A `.` or `..` segment, also once `;parameters` are removed.
    DotSegment,
    /// An empty segment (`//admin`, `/a//b`).
    EmptySegment,
    /// A backslash, raw or `%5C`.
    Backslash,
    /// A control character or NUL (`%00`, `%09`, `%7F`, …).
    ControlCharacter,
    /// Percent-encoding inside percent-encoding (`%2561`).
    DoubleEncoding,
    /// Bytes that are not UTF-8 once decoded (`%C0%AE`).
    NotUtf8,
    /// Another server could read the path as another route (`;parameters`
    /// dropped, case ignored, decoded twice, `\` read as `/`).
    AmbiguousRoute,
    /// The original URI or method header is sent more than once.
    RepeatedOriginalHeader,
    /// The original URI or method is sent under two names that disagree.
    ConflictingOriginalHeaders,
    /// The path after the forward-auth endpoint disagrees with the original
    /// URI header.
    OriginalPathDisagrees,
    /// The original URI is not an HTTP request target.
    MalformedOriginalUri,
    /// The original method is not an HTTP method.
    MalformedOriginalMethod,
    /// Forward auth was asked without the original URI, and the routes need it.
    MissingOriginalUri,
    /// The route strips its prefix, and the path spells the prefix
    /// percent-encoded.
    EncodedPrefix,
    /// The `Host` header is missing, repeated, malformed or names another
    /// host than the request's target.
    Host(BadHost),
}

impl From<BadHost> for Refusal {
    fn from(bad: BadHost) -> Self {
        Self::Host(bad)
    }
}

impl Refusal {
    /// The fixed description the `400` answer carries.
    pub fn description(self) -> &'static str {
        match self {
            Self::PathNotAbsolute => "the path does not start with /",
            Self::DotSegment => "the path has a . or .. segment",
            Self::EmptySegment => "the path has an empty segment",
            Self::Backslash => "the path holds a backslash",
            Self::ControlCharacter => "the path holds a control character",
            Self::DoubleEncoding => "the path is percent-encoded twice",
            Self::NotUtf8 => "the path is not UTF-8",
            Self::AmbiguousRoute => "the path could be read as another route",
            Self::RepeatedOriginalHeader => "the original URI or method is sent more than once",
            Self::ConflictingOriginalHeaders => {
                "the original URI or method is sent under names that disagree"
            }
            Self::OriginalPathDisagrees => {
                "the path after the endpoint disagrees with the original URI"
            }
            Self::MalformedOriginalUri => "the original URI is not a request target",
            Self::MalformedOriginalMethod => "the original method is not a method",
            Self::MissingOriginalUri => "the original URI is missing",
            Self::EncodedPrefix => "the path spells the route's prefix percent-encoded",
            Self::Host(bad) => bad.description(),
        }
    }
}

impl std::fmt::Display for Refusal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.description())
    }
}

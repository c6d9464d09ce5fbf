//! Why a request was refused, and how that is said over HTTP (RFC 6750 §3)
//! and over gRPC.
//!
//! Every rejection renders as a status code, a `WWW-Authenticate: Bearer …`
//! challenge where RFC 6750 asks for one, `Cache-Control: no-store`, and a
//! small JSON body `{"error": …, "error_description": …}`. Descriptions are
//! fixed strings: the token, its `kid` and its claim values are never echoed.
//!
//! | [`AuthError`] | status | challenge `error=` | body `"error"` ([`AuthError::error_code`]) | gRPC status |
//! | --- | --- | --- | --- | --- |
//! | `MissingToken` | `401` | none (bare `Bearer realm="…"`) | `unauthorized` | `16` `UNAUTHENTICATED` |
//! | `InvalidRequest` | `400` | `invalid_request` | `invalid_request` | `16` `UNAUTHENTICATED` |
//! | `InvalidToken` | `401` | `invalid_token` | `invalid_token` | `16` `UNAUTHENTICATED` |
//! | `InsufficientUserAuthentication` | `401` | `insufficient_user_authentication` (+ `max_age`) | `insufficient_user_authentication` | `16` `UNAUTHENTICATED` |
//! | `InsufficientScope` | `403` | `insufficient_scope` | `insufficient_scope` | `7` `PERMISSION_DENIED` |
//! | `KeysUnavailable` | `503` + `Retry-After` | no challenge | `temporarily_unavailable` | `14` `UNAVAILABLE` |
//!
//! A missing token carries no error code in its challenge, as RFC 6750 §3.1
//! asks; its body says `"unauthorized"`.
//!
//! Requests whose `content-type` is `application/grpc…` are answered the way
//! the gRPC protocol answers errors ([`AuthError::to_grpc_response`]): HTTP
//! `200`, `content-type: application/grpc`, `grpc-status` and
//! `grpc-message` in the headers of a trailers-only response with an empty
//! body; the `WWW-Authenticate` challenge is kept as metadata.
//!
//! Every refusal response the crate makes carries its [`AuthError`] in the
//! response's extensions, so that an access log or a metrics layer outside
//! the auth layer reads the verdict instead of guessing it from the status
//! (which is `200` for gRPC, and which other layers answer with too). See
//! [`rejection`](crate::rejection#reading-the-verdict-outside-the-layer).

use std::fmt;
use std::time::Duration;

use http::{HeaderValue, Response, StatusCode, header};

/// Why a request was not authenticated or not authorized.
///
/// See the [module docs](self) for how each variant is rendered.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum AuthError {
    /// No token was sent: `401` with a bare `Bearer realm="…"` challenge.
    MissingToken,
    /// The request carries credentials in a way that is not allowed (a
    /// repeated header, an empty bearer token, bytes that are not a token):
    /// `400 invalid_request`.
    InvalidRequest(InvalidRequest),
    /// A token was sent but is not acceptable: `401 invalid_token`.
    InvalidToken(InvalidToken),
    /// The user is authenticated but lacks the role, team or property the
    /// route requires: `403 insufficient_scope`.
    InsufficientScope,
    /// The token's `auth_time` is missing or older than the configured
    /// maximum age: `401 insufficient_user_authentication` with `max_age`
    /// (RFC 9470), telling the client to have the user sign in again.
    InsufficientUserAuthentication {
        /// The maximum authentication age the resource accepts.
        max_age: Duration,
    },
    /// The issuer's keys cannot be had (issuer down and nothing cached):
    /// `503` with `Retry-After`.
    KeysUnavailable {
        /// How long the client should wait before trying again.
        retry_after: Duration,
    },
}

/// What is wrong with a request's credentials (`400 invalid_request`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum InvalidRequest {
    /// The token header (or `Authorization: Bearer`) was sent more than once.
    RepeatedCredentials,
    /// The header is present but holds no token.
    EmptyToken,
    /// The header value is not a well-formed bearer token.
    MalformedCredentials,
}

impl InvalidRequest {
    /// The fixed, human-readable description sent as `error_description`.
    pub fn description(self) -> &'static str {
        match self {
            Self::RepeatedCredentials => "credentials were sent more than once",
            Self::EmptyToken => "the bearer token is empty",
            Self::MalformedCredentials => "the credentials are not a well-formed bearer token",
        }
    }
}

/// Why a token was refused (`401 invalid_token`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum InvalidToken {
    /// Longer than the configured cap; rejected before any decoding.
    TooLarge,
    /// Not three base64url segments of JSON objects, or JSON that is not
    /// strictly well-formed (duplicate member names included).
    Malformed,
    /// The `alg` header is not on the allow-list.
    UnsupportedAlgorithm,
    /// The header asks for processing the verifier does not do (`crit`,
    /// `b64`, nested tokens).
    UnsupportedHeader,
    /// No key in the issuer's key set matches the token's `kid` (or, without
    /// a `kid`, not exactly one key fits).
    UnknownKey,
    /// The signature does not verify.
    BadSignature,
    /// With several issuers configured: `iss` names none of them (or is
    /// absent or not a string). Refused before any key lookup, and described
    /// like an unknown key.
    UnknownIssuer,
    /// `exp` has passed.
    Expired,
    /// `nbf` or `iat` lies in the future.
    NotYetValid,
    /// `iss` is not the configured issuer.
    WrongIssuer,
    /// `aud` does not contain a configured audience.
    WrongAudience,
    /// A required claim (`exp`, `sub`, `iss`, `aud`) is absent.
    MissingClaim,
    /// A claim has the wrong JSON type or an impossible value.
    InvalidClaim,
    /// The `typ` header is not the token type the configuration requires
    /// (such as `at+jwt`, RFC 9068).
    WrongTokenType,
    /// `azp` is not a client the configuration accepts.
    WrongAuthorizedParty,
    /// `exp - iat` exceeds the configured maximum token lifetime.
    LifetimeTooLong,
}

impl InvalidToken {
    /// The fixed, human-readable description sent as `error_description`.
    pub fn description(self) -> &'static str {
        match self {
            Self::TooLarge => "the token is too large",
            Self::Malformed => "the token is malformed",
            Self::UnsupportedAlgorithm => "the token's signing algorithm is not accepted",
            Self::UnsupportedHeader => "the token uses a header parameter that is not supported",
            // One description for both: before a signature has verified, no
            // refusal tells which keys or audiences this server knows.
            Self::UnknownKey | Self::BadSignature | Self::UnknownIssuer => {
                "the token's signature is invalid"
            }
            Self::Expired => "the token has expired",
            Self::NotYetValid => "the token is not valid yet",
            Self::WrongIssuer => "the token was issued by another issuer",
            Self::WrongAudience => "the token is meant for another audience",
            Self::MissingClaim => "the token lacks a required claim",
            Self::InvalidClaim => "the token has a claim of the wrong type",
            Self::WrongTokenType => "the token is not of the required type",
            Self::WrongAuthorizedParty => "the token was issued to another client",
            Self::LifetimeTooLong => "the token's lifetime is longer than allowed",
        }
    }

    /// A short machine name for logs and metrics (`"expired"`, `"bad_signature"`, …).
    pub fn code(self) -> &'static str {
        match self {
            Self::TooLarge => "too_large",
            Self::Malformed => "malformed",
            Self::UnsupportedAlgorithm => "unsupported_algorithm",
            Self::UnsupportedHeader => "unsupported_header",
            Self::UnknownKey => "unknown_key",
            Self::BadSignature => "bad_signature",
            Self::UnknownIssuer => "unknown_issuer",
            Self::Expired => "expired",
            Self::NotYetValid => "not_yet_valid",
            Self::WrongIssuer => "wrong_issuer",
            Self::WrongAudience => "wrong_audience",
            Self::MissingClaim => "missing_claim",
            Self::InvalidClaim => "invalid_claim",
            Self::WrongTokenType => "wrong_token_type",
            Self::WrongAuthorizedParty => "wrong_authorized_party",
            Self::LifetimeTooLong => "lifetime_too_long",
        }
    }
}

impl From<InvalidToken> for AuthError {
    fn from(reason: InvalidToken) -> Self {
        Self::InvalidToken(reason)
    }
}

impl From<InvalidRequest> for AuthError {
    fn from(reason: InvalidRequest) -> Self {
        Self::InvalidRequest(reason)
    }
}

impl AuthError {
    /// The HTTP status this error is answered with.
    pub fn status(&self) -> StatusCode {
        match self {
            Self::MissingToken
            | Self::InvalidToken(_)
            | Self::InsufficientUserAuthentication { .. } => StatusCode::UNAUTHORIZED,
            Self::InvalidRequest(_) => StatusCode::BAD_REQUEST,
            Self::InsufficientScope => StatusCode::FORBIDDEN,
            Self::KeysUnavailable { .. } => StatusCode::SERVICE_UNAVAILABLE,
        }
    }

    /// The error code sent as the body's `"error"` (`invalid_token`, …;
    /// `unauthorized` for a missing token). The `WWW-Authenticate`
    /// challenge names the same code, except for a missing token, whose
    /// challenge carries none (RFC 6750 §3.1), and for unavailable keys,
    /// which get no challenge.
    pub fn error_code(&self) -> &'static str {
        match self {
            Self::MissingToken => "unauthorized",
            Self::InvalidRequest(_) => "invalid_request",
            Self::InvalidToken(_) => "invalid_token",
            Self::InsufficientScope => "insufficient_scope",
            Self::InsufficientUserAuthentication { .. } => "insufficient_user_authentication",
            Self::KeysUnavailable { .. } => "temporarily_unavailable",
        }
    }

    /// The gRPC status code this error is answered with over gRPC
    /// (`16` UNAUTHENTICATED, `7` PERMISSION_DENIED, `14` UNAVAILABLE).
    pub fn grpc_status(&self) -> u16 {
        match self {
            Self::MissingToken
            | Self::InvalidRequest(_)
            | Self::InvalidToken(_)
            | Self::InsufficientUserAuthentication { .. } => GRPC_UNAUTHENTICATED,
            Self::InsufficientScope => GRPC_PERMISSION_DENIED,
            Self::KeysUnavailable { .. } => GRPC_UNAVAILABLE,
        }
    }

    /// The fixed description sent as `error_description`.
    pub fn description(&self) -> &'static str {
        match self {
            Self::MissingToken => "a bearer token is required",
            Self::InvalidRequest(reason) => reason.description(),
            Self::InvalidToken(reason) => reason.description(),
            Self::InsufficientScope => "the user lacks the role or team this resource requires",
            Self::InsufficientUserAuthentication { .. } => "more recent authentication is required",
            Self::KeysUnavailable { .. } => "the issuer's signing keys are unavailable",
        }
    }

    /// The `WWW-Authenticate` challenge for this error, if it carries one:
    /// `Bearer realm="…"`, then `error`, `error_description` (and `max_age`)
    /// unless no token was sent, then the [`Challenge`]'s `scope` and
    /// `resource_metadata` when it has them. A realm alone converts into a
    /// [`Challenge`]: `error.challenge("api")`.
    ///
    /// The realm must already be a valid quoted-string body (checked when
    /// the configuration is built); `scope` and `resource_metadata` are
    /// quoted here.
    pub fn challenge<'a>(&self, challenge: impl Into<Challenge<'a>>) -> Option<HeaderValue> {
        let challenge = challenge.into();
        let mut value = String::with_capacity(160);
        value.push_str("Bearer realm=\"");
        value.push_str(challenge.realm);
        value.push('"');
        match self {
            Self::MissingToken => {}
            Self::KeysUnavailable { .. } => return None,
            other => {
                value.push_str(", error=\"");
                value.push_str(other.error_code());
                value.push_str("\", error_description=\"");
                value.push_str(other.description());
                value.push('"');
                if let Self::InsufficientUserAuthentication { max_age } = other {
                    value.push_str(&format!(", max_age=\"{}\"", max_age.as_secs()));
                }
            }
        }
        if let Some(scope) = challenge.scope {
            push_parameter(&mut value, "scope", scope);
        }
        if let Some(url) = challenge.resource_metadata {
            push_parameter(&mut value, "resource_metadata", url);
        }
        HeaderValue::from_str(&value).ok()
    }

    /// The JSON body: `{"error": …, "error_description": …}`.
    pub fn body(&self) -> String {
        // Codes and descriptions are fixed ASCII strings without quotes or
        // backslashes, so no escaping is needed.
        format!(
            "{{\"error\":\"{}\",\"error_description\":\"{}\"}}",
            self.error_code(),
            self.description()
        )
    }

    /// Renders the full response: status, challenge, `Retry-After`, JSON
    /// body, and this error in the response's extensions.
    pub fn to_response<'a, B: From<String>>(
        &self,
        challenge: impl Into<Challenge<'a>>,
    ) -> Response<B> {
        let mut response = Response::new(B::from(self.body()));
        response.extensions_mut().insert(self.clone());
        *response.status_mut() = self.status();
        let headers = response.headers_mut();
        headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
        headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
        self.insert_challenge_and_retry(challenge.into(), headers);
        response
    }

    /// Renders the gRPC answer: HTTP `200`, `content-type:
    /// application/grpc`, `grpc-status` and `grpc-message` in the headers
    /// of a trailers-only response (the body `B::default()` must be empty),
    /// plus the `WWW-Authenticate` challenge and `Retry-After` as metadata,
    /// and this error in the response's extensions.
    pub fn to_grpc_response<'a, B: Default>(
        &self,
        challenge: impl Into<Challenge<'a>>,
    ) -> Response<B> {
        let mut response = grpc_error(self.grpc_status(), self.description());
        response.extensions_mut().insert(self.clone());
        self.insert_challenge_and_retry(challenge.into(), response.headers_mut());
        response
    }

    fn insert_challenge_and_retry(&self, challenge: Challenge<'_>, headers: &mut http::HeaderMap) {
        if let Some(challenge) = self.challenge(challenge) {
            headers.insert(header::WWW_AUTHENTICATE, challenge);
        }
        if let Self::KeysUnavailable { retry_after } = self {
            let seconds = retry_after.as_secs_f64().ceil().max(1.0) as u64;
            headers.insert(header::RETRY_AFTER, HeaderValue::from(seconds));
        }
    }
}

/// What a `WWW-Authenticate: Bearer` challenge names besides the error:
/// the realm and, for OAuth clients such as MCP clients, where the
/// protected resource metadata is (`resource_metadata`, RFC 9728 §5.1) and
/// which scopes would be enough (`scope`, RFC 6750 §3). The layer and the
/// guards fill it from the configuration
/// ([`protected_resource`](crate::MeinGptAuthBuilder::protected_resource),
/// [`GuardLayer::challenge_scope`](crate::GuardLayer::challenge_scope)); a
/// realm alone converts into one.
///
/// ```
/// use meingpt_auth::AuthError;
/// use meingpt_auth::error::Challenge;
///
/// let challenge = Challenge::new("api")
///     .scope("files:read")
///     .resource_metadata("https://api.example.com/.well-known/oauth-protected-resource");
/// assert_eq!(
///     AuthError::InsufficientScope.challenge(challenge).unwrap(),
///     "Bearer realm=\"api\", error=\"insufficient_scope\", error_description=\"the user lacks \
///      the role or team this resource requires\", scope=\"files:read\", \
///      resource_metadata=\"https://api.example.com/.well-known/oauth-protected-resource\""
/// );
/// assert_eq!(AuthError::MissingToken.challenge("api").unwrap(), "Bearer realm=\"api\"");
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Challenge<'a> {
    realm: &'a str,
    scope: Option<&'a str>,
    resource_metadata: Option<&'a str>,
}

impl<'a> Challenge<'a> {
    /// A challenge naming `realm` only.
    pub fn new(realm: &'a str) -> Self {
        Self {
            realm,
            scope: None,
            resource_metadata: None,
        }
    }

    /// The scopes that would be enough, space-separated (`scope="…"`).
    pub fn scope(mut self, scope: impl Into<Option<&'a str>>) -> Self {
        self.scope = scope.into();
        self
    }

    /// The URL of the protected resource metadata (`resource_metadata="…"`).
    pub fn resource_metadata(mut self, url: impl Into<Option<&'a str>>) -> Self {
        self.resource_metadata = url.into();
        self
    }

    /// The realm.
    pub fn realm(&self) -> &'a str {
        self.realm
    }

    /// The scopes named, if any.
    pub fn scopes(&self) -> Option<&'a str> {
        self.scope
    }

    /// The protected resource metadata URL named, if any.
    pub fn resource_metadata_url(&self) -> Option<&'a str> {
        self.resource_metadata
    }
}

impl<'a> From<&'a str> for Challenge<'a> {
    fn from(realm: &'a str) -> Self {
        Self::new(realm)
    }
}

impl<'a> From<&'a String> for Challenge<'a> {
    fn from(realm: &'a String) -> Self {
        Self::new(realm)
    }
}

/// `, name="value"`, with `"` and `\` escaped (RFC 9110 §5.6.4).
fn push_parameter(challenge: &mut String, name: &str, value: &str) {
    challenge.push_str(", ");
    challenge.push_str(name);
    challenge.push_str("=\"");
    for c in value.chars() {
        if c == '"' || c == '\\' {
            challenge.push('\\');
        }
        challenge.push(c);
    }
    challenge.push('"');
}

const GRPC_PERMISSION_DENIED: u16 = 7;
pub(crate) const GRPC_INTERNAL: u16 = 13;
const GRPC_UNAVAILABLE: u16 = 14;
const GRPC_UNAUTHENTICATED: u16 = 16;

/// Whether `headers` belong to a gRPC request (`content-type:
/// application/grpc`, `application/grpc+proto`, `application/grpc-web`, …).
pub(crate) fn is_grpc(headers: &http::HeaderMap) -> bool {
    headers
        .get(header::CONTENT_TYPE)
        .is_some_and(|value| value.as_bytes().starts_with(b"application/grpc"))
}

/// A trailers-only gRPC error response: status and message in the headers.
pub(crate) fn grpc_error<B: Default>(status: u16, message: &str) -> Response<B> {
    let mut response = Response::new(B::default());
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/grpc"),
    );
    headers.insert("grpc-status", HeaderValue::from(status));
    if let Ok(message) = HeaderValue::from_str(&grpc_percent_encode(message)) {
        headers.insert("grpc-message", message);
    }
    response
}

/// `grpc-message` is percent-encoded UTF-8: bytes outside space..`~`, and
/// `%` itself, become `%XX`.
fn grpc_percent_encode(message: &str) -> String {
    use std::fmt::Write;
    let mut encoded = String::with_capacity(message.len());
    for byte in message.bytes() {
        if (0x20..=0x7e).contains(&byte) && byte != b'%' {
            encoded.push(char::from(byte));
        } else {
            let _ = write!(encoded, "%{byte:02X}");
        }
    }
    encoded
}

impl fmt::Display for AuthError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.description())
    }
}

impl std::error::Error for AuthError {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn missing_token_challenge_has_no_error_code() {
        let challenge = AuthError::MissingToken.challenge("api").unwrap();
        assert_eq!(challenge, "Bearer realm=\"api\"");
    }

    #[test]
    fn invalid_token_challenge_names_code_and_fixed_description() {
        let challenge = AuthError::from(InvalidToken::Expired)
            .challenge("api")
            .unwrap();
        assert_eq!(
            challenge,
            "Bearer realm=\"api\", error=\"invalid_token\", error_description=\"the token has expired\""
        );
    }

    #[test]
    fn challenge_parameters_are_quoted_with_quotes_and_backslashes_escaped() {
        let challenge = AuthError::InsufficientScope
            .challenge(
                Challenge::new("api")
                    .scope("a\"b\\c")
                    .resource_metadata("https://x/\""),
            )
            .unwrap();
        assert!(
            challenge
                .to_str()
                .unwrap()
                .ends_with(r#", scope="a\"b\\c", resource_metadata="https://x/\"""#),
            "{challenge:?}"
        );
        // Control characters make no header: no challenge rather than a
        // broken one.
        assert_eq!(
            AuthError::MissingToken.challenge(Challenge::new("api").scope("a\nb")),
            None
        );
    }

    #[test]
    fn unavailable_keys_carry_no_challenge_even_with_parameters() {
        let error = AuthError::KeysUnavailable {
            retry_after: Duration::from_secs(1),
        };
        let challenge = Challenge::new("api").resource_metadata("https://x/m");
        assert_eq!(error.challenge(challenge), None);
    }

    #[test]
    fn stale_authentication_challenge_carries_max_age() {
        let challenge = AuthError::InsufficientUserAuthentication {
            max_age: Duration::from_secs(300),
        }
        .challenge("api")
        .unwrap();
        assert_eq!(
            challenge,
            "Bearer realm=\"api\", error=\"insufficient_user_authentication\", \
             error_description=\"more recent authentication is required\", max_age=\"300\""
        );
    }

    #[test]
    fn unavailable_keys_answer_503_with_retry_after_rounded_up() {
        let error = AuthError::KeysUnavailable {
            retry_after: Duration::from_millis(1500),
        };
        let response: Response<String> = error.to_response("api");
        assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(response.headers()[header::RETRY_AFTER], "2");
        assert!(response.headers().get(header::WWW_AUTHENTICATE).is_none());
    }

    #[test]
    fn grpc_answer_is_trailers_only_with_status_and_message_in_the_headers() {
        let response: Response<String> = AuthError::InsufficientScope.to_grpc_response("api");
        assert_eq!(response.status(), StatusCode::OK);
        assert_eq!(response.headers()[header::CONTENT_TYPE], "application/grpc");
        assert_eq!(response.headers()["grpc-status"], "7");
        assert_eq!(
            response.headers()["grpc-message"],
            "the user lacks the role or team this resource requires"
        );
        assert!(response.body().is_empty());
    }

    #[test]
    fn both_shapes_carry_the_error_in_the_extensions() {
        let error = AuthError::from(InvalidToken::Expired);
        let response: Response<String> = error.to_response("api");
        assert_eq!(response.extensions().get::<AuthError>(), Some(&error));
        let response: Response<String> = error.to_grpc_response("api");
        assert_eq!(response.extensions().get::<AuthError>(), Some(&error));
    }

    #[test]
    fn grpc_message_percent_encodes_what_the_protocol_reserves() {
        assert_eq!(grpc_percent_encode("50% über\n"), "50%25 %C3%BCber%0A");
    }

    #[test]
    fn every_body_is_valid_json_with_error_and_description() {
        let errors = [
            AuthError::MissingToken,
            AuthError::InvalidRequest(InvalidRequest::RepeatedCredentials),
            AuthError::InvalidToken(InvalidToken::BadSignature),
            AuthError::InsufficientScope,
            AuthError::KeysUnavailable {
                retry_after: Duration::from_secs(5),
            },
        ];
        for error in errors {
            let body: serde_json::Value = serde_json::from_str(&error.body()).unwrap();
            assert_eq!(body["error_description"], error.description());
            assert_eq!(body["error"], error.error_code());
        }
    }
}

//! What a refused request's `error_description` says, as the tests expect
//! it word for word: one place, so that a test asserts the text a user
//! reads and every test asserts the same text.

pub const MALFORMED: &str = "the token is malformed";
pub const MALFORMED_CREDENTIALS: &str = "the credentials are not a well-formed bearer token";
pub const TOO_LARGE: &str = "the token is too large";
pub const UNSUPPORTED_ALGORITHM: &str = "the token's signing algorithm is not accepted";
pub const UNSUPPORTED_HEADER: &str = "the token uses a header parameter that is not supported";
pub const BAD_SIGNATURE: &str = "the token's signature is invalid";
/// Before a signature has verified, a key the issuer does not publish is
/// answered as a bad signature (no oracle for which keys a server knows).
pub const UNKNOWN_KEY: &str = BAD_SIGNATURE;
/// No accepted issuer verified the token: answered as a bad signature.
pub const NOT_VERIFIED: &str = BAD_SIGNATURE;
pub const EXPIRED: &str = "the token has expired";
pub const NOT_YET_VALID: &str = "the token is not valid yet";
pub const LIFETIME_TOO_LONG: &str = "the token's lifetime is longer than allowed";
pub const WRONG_ISSUER: &str = "the token was issued by another issuer";
pub const WRONG_AUDIENCE: &str = "the token is meant for another audience";
pub const WRONG_AUTHORIZED_PARTY: &str = "the token was issued to another client";
pub const WRONG_TOKEN_TYPE: &str = "the token is not of the required type";
pub const MISSING_CLAIM: &str = "the token lacks a required claim";
pub const INVALID_CLAIM: &str = "the token has a claim of the wrong type";

/// The RFC 9470 challenge for a maximum authentication age of 300 s.
pub const STEP_UP_CHALLENGE: &str = "Bearer realm=\"meingpt\", error=\"insufficient_user_authentication\", \
     error_description=\"more recent authentication is required\", max_age=\"300\"";

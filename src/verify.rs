//! Token verification: from compact JWS to [`MeinGptUser`].
//!
//! The order of checks, each a `401 invalid_token` when it fails:
//!
//! 1. size cap, before any decoding;
//! 2. exactly three non-empty segments of strict base64url (no padding, no
//!    `+`/`/`, no whitespace);
//! 3. the header: a JSON object without duplicate members; `alg` on the
//!    allow-list (exact, case-sensitive, before any key lookup); `kid` a
//!    string if present; `crit`, `b64` and nested tokens (`cty: JWT`)
//!    refused; `jku`, `x5u`, `jwk`, `x5c` ignored — keys come only from the
//!    configured JWKS;
//! 4. the key: by `kid` from the JWKS cache, or the single fitting key;
//! 5. the signature;
//! 6. the claims: a JSON object without duplicate members; `iss` exact;
//!    `aud` (string or array of strings) containing a configured audience;
//!    `exp` required; `nbf` and `iat` not in the future (with leeway);
//!    times are JSON numbers (RFC 7519 NumericDate: fractions allowed and
//!    compared exactly, nothing but numbers, at most ±2^63 seconds); `sub` a
//!    non-empty string; every meinGPT claim of its documented type;
//! 7. the access-token profile, when configured: `typ` header, `azp`, and
//!    the maximum lifetime `exp - iat`.

use std::sync::Arc;
use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::Algorithm;
use serde_json::{Map, Value};

use crate::claims::{ClaimRules, MeinGptUser, user_from_claims};
use crate::clock::SharedClock;
use crate::error::{AuthError, InvalidToken};
use crate::json::parse_object;
use crate::jwks::JwksCache;
use crate::keys::VerifyingKey;

const TARGET: &str = "meingpt_auth::verify";

/// No verified token is remembered for longer than this, whatever its `exp`.
const MAX_CACHE_LIFETIME: Duration = Duration::from_secs(24 * 3600);

/// Where verification keys come from.
#[derive(Debug)]
pub(crate) enum Keys {
    /// JWKS (meinGPT, OpenID Connect): keys chosen by `kid`.
    Jwks(Arc<JwksCache>),
    /// One configured key (`jwt_local`); `kid` is not consulted.
    Static(Arc<VerifyingKey>),
}

/// Checks tokens against one issuer and its audiences.
#[derive(Debug)]
pub(crate) struct Verifier {
    /// Checked against `alg` before anything else; a JWKS source may narrow
    /// it further (the algorithms its discovery document lists).
    pub(crate) algorithms: Vec<Algorithm>,
    pub(crate) issuer: String,
    /// Accepted audiences, each with the index of its JWKS source.
    pub(crate) audiences: Vec<(String, usize)>,
    pub(crate) leeway: Duration,
    pub(crate) max_token_size: usize,
    pub(crate) keys: Keys,
    pub(crate) rules: ClaimRules,
    /// Require `auth_time` no older than this (RFC 9470).
    pub(crate) max_auth_age: Option<Duration>,
    pub(crate) clock: SharedClock,
    /// Tokens already verified, by SHA-256 of the whole token.
    pub(crate) verified: Option<VerifiedTokens>,
    /// Optional access-token checks (all off by default).
    pub(crate) profile: TokenProfile,
}

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
    fn type_matches(&self, typ: Option<&Value>) -> bool {
        let Some(required) = &self.token_type else {
            return true;
        };
        let Some(Value::String(typ)) = typ else {
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

/// The verified-token cache: bounded, each entry gone at its token's `exp`,
/// and disregarded once the key that verified it has left the key set.
pub(crate) type VerifiedTokens = moka::sync::Cache<[u8; 32], Arc<Verified>>;

/// A verified token, as the verified-token cache keeps it.
#[derive(Debug)]
pub(crate) struct Verified {
    user: MeinGptUser,
    times: Times,
    source: usize,
    /// The key source's removal epoch when the token was verified.
    epoch: u64,
    /// How long the entry may live: until `exp` (plus leeway).
    lifetime: Duration,
}

/// The time claims, re-checked on every cache hit.
#[derive(Debug, Clone, Copy)]
struct Times {
    exp: NumericDate,
    nbf: Option<NumericDate>,
    iat: Option<NumericDate>,
    auth_time: Option<NumericDate>,
}

/// A NumericDate (RFC 7519 §2): nanoseconds since the Unix epoch. A
/// fraction finer than a nanosecond is rounded the way that never lengthens
/// a token's validity (see [`numeric_date`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
struct NumericDate(i128);

const NANOS: i128 = 1_000_000_000;

impl NumericDate {
    fn from_duration(at: Duration) -> Self {
        Self(at.as_nanos() as i128)
    }

    /// Whole seconds, rounded down.
    fn whole_seconds(self) -> i64 {
        self.0.div_euclid(NANOS) as i64
    }

    fn plus(self, by: Duration) -> Self {
        Self(self.0 + by.as_nanos() as i128)
    }

    fn minus(self, by: Duration) -> Self {
        Self(self.0 - by.as_nanos() as i128)
    }
}

/// Builds the verified-token cache with room for `capacity` tokens.
pub(crate) fn verified_tokens(capacity: u64) -> VerifiedTokens {
    struct UntilExpiry;
    impl moka::Expiry<[u8; 32], Arc<Verified>> for UntilExpiry {
        fn expire_after_create(
            &self,
            _key: &[u8; 32],
            value: &Arc<Verified>,
            _created_at: std::time::Instant,
        ) -> Option<Duration> {
            Some(value.lifetime)
        }
    }
    moka::sync::Cache::builder()
        .max_capacity(capacity)
        .expire_after(UntilExpiry)
        .build()
}

struct Header {
    alg: Algorithm,
    kid: Option<String>,
}

impl Verifier {
    pub(crate) async fn verify(&self, token: &str) -> Result<MeinGptUser, AuthError> {
        let outcome = match &self.verified {
            Some(cache) if token.len() <= self.max_token_size => {
                self.verify_cached(cache, token).await
            }
            _ => self.verify_fresh(token).await.map(|verified| verified.user),
        };
        match &outcome {
            Ok(_) => tracing::trace!(target: TARGET, "token verified"),
            Err(error) => match error {
                AuthError::InvalidToken(reason) => {
                    tracing::debug!(target: TARGET, reason = reason.code(), "token rejected");
                }
                other => tracing::debug!(target: TARGET, error = %other, "token not verified"),
            },
        }
        outcome
    }

    /// A token seen before costs a hash and a cache lookup; its times are
    /// checked again, and it counts only while the key that verified it is
    /// still in the key set.
    async fn verify_cached(
        &self,
        cache: &VerifiedTokens,
        token: &str,
    ) -> Result<MeinGptUser, AuthError> {
        let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, token.as_bytes());
        let mut hash = [0u8; 32];
        hash.copy_from_slice(digest.as_ref());
        if let Some(hit) = cache.get(&hash) {
            if self.epoch(hit.source) == hit.epoch && self.keys_trusted(hit.source) {
                self.check_times(&hit.times)?;
                return Ok(hit.user.clone());
            }
            cache.invalidate(&hash);
        }
        let verified = self.verify_fresh(token).await?;
        let user = verified.user.clone();
        if !verified.lifetime.is_zero() {
            cache.insert(hash, Arc::new(verified));
        }
        Ok(user)
    }

    /// Whether a cached verification from `source` may be used now (keys
    /// within the stale limit); starts a due key refresh in the background.
    fn keys_trusted(&self, source: usize) -> bool {
        match &self.keys {
            Keys::Jwks(jwks) => jwks.keys_trusted(source, self.clock.now()),
            Keys::Static(_) => true,
        }
    }

    /// The key source's removal epoch: it changes when a refresh drops a key.
    fn epoch(&self, source: usize) -> u64 {
        match &self.keys {
            Keys::Jwks(jwks) => jwks.removals(source),
            Keys::Static(_) => 0,
        }
    }

    async fn verify_fresh(&self, token: &str) -> Result<Verified, AuthError> {
        if token.len() > self.max_token_size {
            return Err(InvalidToken::TooLarge.into());
        }
        let mut segments = token.split('.');
        let (Some(header_b64), Some(claims_b64), Some(signature_b64), None) = (
            segments.next(),
            segments.next(),
            segments.next(),
            segments.next(),
        ) else {
            return Err(InvalidToken::Malformed.into());
        };
        if header_b64.is_empty() || claims_b64.is_empty() || signature_b64.is_empty() {
            return Err(InvalidToken::Malformed.into());
        }
        let header = self.header(&decode_segment(header_b64)?)?;
        let signature = decode_segment(signature_b64)?;
        let claims_bytes = decode_segment(claims_b64)?;
        let (key, source) = match &self.keys {
            Keys::Static(key) => (key.clone(), 0),
            Keys::Jwks(jwks) => {
                // Audiences on one JWKS: ask it. On several (meinGPT
                // organizations): the token's `aud` chooses which JWKS to
                // ask; it is checked again after the signature.
                let source = match self.audiences.as_slice() {
                    [(_, source), rest @ ..] if rest.iter().all(|(_, s)| s == source) => *source,
                    _ => self.source_for(&claims_bytes)?,
                };
                let key = jwks.key(source, header.kid.as_deref(), header.alg).await?;
                (key, source)
            }
        };
        // Read before the signature check: a key removed meanwhile makes
        // the cached entry stale at once.
        let epoch = self.epoch(source);
        let message = &token.as_bytes()[..header_b64.len() + 1 + claims_b64.len()];
        if !key.verify(header.alg, message, &signature) {
            return Err(InvalidToken::BadSignature.into());
        }
        let claims = parse_object(&claims_bytes).ok_or(InvalidToken::Malformed)?;
        let (user, times) = self.user(claims, source)?;
        let now = self.clock.now().as_secs() as i64;
        let remaining = times
            .exp
            .whole_seconds()
            .saturating_add(self.leeway.as_secs() as i64)
            .saturating_sub(now)
            .max(0);
        Ok(Verified {
            user,
            times,
            source,
            epoch,
            lifetime: Duration::from_secs(remaining as u64).min(MAX_CACHE_LIFETIME),
        })
    }

    /// `exp`, `nbf`, `iat` and `auth_time` against the clock, with leeway,
    /// to the nanosecond.
    fn check_times(&self, times: &Times) -> Result<(), AuthError> {
        let now = NumericDate::from_duration(self.clock.now());
        if now >= times.exp.plus(self.leeway) {
            return Err(InvalidToken::Expired.into());
        }
        let latest = now.plus(self.leeway);
        let future = |at: Option<NumericDate>| at.is_some_and(|at| at > latest);
        if future(times.nbf) || future(times.iat) || future(times.auth_time) {
            return Err(InvalidToken::NotYetValid.into());
        }
        if let Some(max_age) = self.max_auth_age {
            let oldest = now.minus(max_age).minus(self.leeway);
            if times.auth_time.is_none_or(|at| at < oldest) {
                return Err(AuthError::InsufficientUserAuthentication { max_age });
            }
        }
        Ok(())
    }

    fn header(&self, bytes: &[u8]) -> Result<Header, InvalidToken> {
        let header = parse_object(bytes).ok_or(InvalidToken::Malformed)?;
        let Some(Value::String(alg)) = header.get("alg") else {
            return Err(InvalidToken::Malformed);
        };
        let alg = alg
            .parse::<Algorithm>()
            .ok()
            .filter(|alg| self.algorithms.contains(alg))
            .ok_or(InvalidToken::UnsupportedAlgorithm)?;
        if header.contains_key("crit") || header.contains_key("b64") {
            return Err(InvalidToken::UnsupportedHeader);
        }
        if !self.profile.type_matches(header.get("typ")) {
            return Err(InvalidToken::WrongTokenType);
        }
        match header.get("cty") {
            None => {}
            Some(Value::String(cty)) if !cty.eq_ignore_ascii_case("JWT") => {}
            Some(_) => return Err(InvalidToken::UnsupportedHeader),
        }
        let kid = match header.get("kid") {
            None => None,
            Some(Value::String(kid)) if kid.len() <= 256 => Some(kid.clone()),
            Some(Value::String(_)) => return Err(InvalidToken::UnknownKey),
            Some(_) => return Err(InvalidToken::Malformed),
        };
        Ok(Header { alg, kid })
    }

    /// Reads `aud` before verification, only to choose the JWKS to ask.
    fn source_for(&self, claims: &[u8]) -> Result<usize, InvalidToken> {
        let claims = parse_object(claims).ok_or(InvalidToken::Malformed)?;
        let (_, source) = self.matching_audience(&claims)?;
        Ok(source)
    }

    fn matching_audience(
        &self,
        claims: &Map<String, Value>,
    ) -> Result<(&str, usize), InvalidToken> {
        let find = |aud: &str| {
            self.audiences
                .iter()
                .find(|(configured, _)| configured == aud)
                .map(|(configured, source)| (configured.as_str(), *source))
        };
        match claims.get("aud") {
            None => Err(InvalidToken::MissingClaim),
            Some(Value::String(aud)) => find(aud).ok_or(InvalidToken::WrongAudience),
            Some(Value::Array(items)) => {
                if items.is_empty() || !items.iter().all(Value::is_string) {
                    return Err(InvalidToken::InvalidClaim);
                }
                items
                    .iter()
                    .filter_map(Value::as_str)
                    .find_map(find)
                    .ok_or(InvalidToken::WrongAudience)
            }
            Some(_) => Err(InvalidToken::InvalidClaim),
        }
    }

    fn user(
        &self,
        claims: Map<String, Value>,
        source: usize,
    ) -> Result<(MeinGptUser, Times), AuthError> {
        match claims.get("iss") {
            None => return Err(InvalidToken::MissingClaim.into()),
            Some(Value::String(iss)) if *iss == self.issuer => {}
            Some(Value::String(_)) => return Err(InvalidToken::WrongIssuer.into()),
            Some(_) => return Err(InvalidToken::InvalidClaim.into()),
        }
        let (audience, matched_source) = self.matching_audience(&claims)?;
        if matched_source != source {
            return Err(InvalidToken::WrongAudience.into());
        }
        let times = Times {
            exp: numeric_date(&claims, "exp", Round::Down)?.ok_or(InvalidToken::MissingClaim)?,
            nbf: numeric_date(&claims, "nbf", Round::Up)?,
            iat: numeric_date(&claims, "iat", Round::Up)?,
            auth_time: numeric_date(&claims, "auth_time", Round::Down)?,
        };
        self.check_times(&times)?;
        self.check_profile(&claims, &times)?;
        let audience = audience.to_owned();
        let user = user_from_claims(
            claims,
            &audience,
            &self.issuer,
            times.exp.whole_seconds(),
            times.iat.map(NumericDate::whole_seconds),
            &self.rules,
        )?;
        Ok((user, times))
    }

    /// The configured access-token profile: `azp` and maximum lifetime (the
    /// `typ` header is checked with the header).
    fn check_profile(&self, claims: &Map<String, Value>, times: &Times) -> Result<(), AuthError> {
        let profile = &self.profile;
        if !profile.authorized_parties.is_empty() {
            match claims.get("azp") {
                None => return Err(InvalidToken::MissingClaim.into()),
                Some(Value::String(azp)) if profile.authorized_parties.contains(azp) => {}
                Some(Value::String(_)) => return Err(InvalidToken::WrongAuthorizedParty.into()),
                Some(_) => return Err(InvalidToken::InvalidClaim.into()),
            }
        }
        if let Some(max_lifetime) = profile.max_lifetime {
            let iat = times.iat.ok_or(InvalidToken::MissingClaim)?;
            if times.exp > iat.plus(max_lifetime) {
                return Err(InvalidToken::LifetimeTooLong.into());
            }
        }
        Ok(())
    }
}

/// Which way a NumericDate's fraction of a nanosecond is rounded: down for
/// `exp` (a token never lives longer), up for `nbf` and `iat` (never valid
/// sooner).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Round {
    Down,
    Up,
}

/// A NumericDate claim (RFC 7519 §2): a JSON number of seconds since the
/// epoch, fractions allowed. Strings, booleans, null and values beyond ±2^63
/// seconds are invalid; an integer beyond that (up to 2^64 - 1) means "far
/// in the future", as before fractions were read.
fn numeric_date(
    claims: &Map<String, Value>,
    name: &str,
    round: Round,
) -> Result<Option<NumericDate>, InvalidToken> {
    let Some(value) = claims.get(name) else {
        return Ok(None);
    };
    let Value::Number(number) = value else {
        return Err(InvalidToken::InvalidClaim);
    };
    if let Some(seconds) = number.as_i64() {
        return Ok(Some(NumericDate(i128::from(seconds) * NANOS)));
    }
    if number.as_u64().is_some() {
        return Ok(Some(NumericDate(i128::from(i64::MAX) * NANOS)));
    }
    // 2^63 as a double; anything at or beyond it is out of range.
    const LIMIT: f64 = 9_223_372_036_854_775_808.0;
    match number.as_f64() {
        Some(seconds) if seconds.is_finite() && (-LIMIT..LIMIT).contains(&seconds) => {
            // Both steps are exact: the whole part fits in i64 and
            // `seconds - whole` is a double in [0, 1).
            let whole = seconds.floor();
            let fraction = (seconds - whole) * 1e9;
            let nanos = match round {
                Round::Down => fraction.floor(),
                Round::Up => fraction.ceil(),
            };
            Ok(Some(NumericDate(
                i128::from(whole as i64) * NANOS + nanos as i128,
            )))
        }
        _ => Err(InvalidToken::InvalidClaim),
    }
}

fn decode_segment(segment: &str) -> Result<Vec<u8>, InvalidToken> {
    URL_SAFE_NO_PAD
        .decode(segment)
        .map_err(|_| InvalidToken::Malformed)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn numeric_dates_are_numbers_with_exact_fractions() {
        let claims = json!({
            "a": 5, "b": "5", "c": 5.5, "d": null, "e": u64::MAX, "f": -1.25,
            "g": 1e300, "h": true, "i": 1.0e10, "j": 0.1
        });
        let Value::Object(claims) = claims else {
            unreachable!()
        };
        let at = |name| numeric_date(&claims, name, Round::Down);
        let nanos = |n: i128| Ok(Some(NumericDate(n)));
        assert_eq!(at("a"), nanos(5 * NANOS));
        assert_eq!(at("b"), Err(InvalidToken::InvalidClaim));
        assert_eq!(at("c"), nanos(5 * NANOS + NANOS / 2));
        assert_eq!(at("d"), Err(InvalidToken::InvalidClaim));
        assert_eq!(at("e"), nanos(i128::from(i64::MAX) * NANOS));
        assert_eq!(at("f"), nanos(-NANOS - NANOS / 4));
        assert_eq!(at("g"), Err(InvalidToken::InvalidClaim));
        assert_eq!(at("h"), Err(InvalidToken::InvalidClaim));
        assert_eq!(at("i"), nanos(10_000_000_000 * NANOS));
        assert_eq!(at("z"), Ok(None));
        assert_eq!(at("j"), nanos(100_000_000));
        let up = |name| numeric_date(&claims, name, Round::Up);
        assert_eq!(up("c"), nanos(5 * NANOS + NANOS / 2));
        assert_eq!(NumericDate(-NANOS / 2).whole_seconds(), -1);
    }

    #[test]
    fn token_types_compare_ignoring_case_and_the_application_prefix() {
        let profile = TokenProfile {
            token_type: Some("at+jwt".into()),
            ..TokenProfile::default()
        };
        for typ in [
            "at+jwt",
            "AT+JWT",
            "application/at+jwt",
            "Application/At+Jwt",
        ] {
            assert!(profile.type_matches(Some(&json!(typ))), "{typ}");
        }
        for typ in [json!("JWT"), json!("at+jwt "), json!(["at+jwt"])] {
            assert!(!profile.type_matches(Some(&typ)), "{typ}");
        }
        assert!(!profile.type_matches(None));
        assert!(TokenProfile::default().type_matches(None));
    }

    #[test]
    fn segments_must_be_strict_base64url() {
        assert!(decode_segment("eyJhIjoxfQ").is_ok());
        assert!(decode_segment("eyJhIjoxfQ==").is_err());
        assert!(decode_segment("ab+/").is_err());
        assert!(decode_segment("ey Jh").is_err());
    }
}

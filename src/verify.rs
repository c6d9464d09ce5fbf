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
//!    integers only for times; `sub` a non-empty string; every meinGPT claim
//!    of its documented type.

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
    exp: i64,
    nbf: Option<i64>,
    iat: Option<i64>,
    auth_time: Option<i64>,
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

    /// `exp`, `nbf`, `iat` and `auth_time` against the clock, with leeway.
    fn check_times(&self, times: &Times) -> Result<(), AuthError> {
        let now = self.clock.now().as_secs() as i64;
        let leeway = self.leeway.as_secs() as i64;
        if now >= times.exp.saturating_add(leeway) {
            return Err(InvalidToken::Expired.into());
        }
        let future = |at: Option<i64>| at.is_some_and(|at| at > now.saturating_add(leeway));
        if future(times.nbf) || future(times.iat) || future(times.auth_time) {
            return Err(InvalidToken::NotYetValid.into());
        }
        if let Some(max_age) = self.max_auth_age {
            let oldest = now
                .saturating_sub(max_age.as_secs() as i64)
                .saturating_sub(leeway);
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
            exp: numeric_date(&claims, "exp")?.ok_or(InvalidToken::MissingClaim)?,
            nbf: numeric_date(&claims, "nbf")?,
            iat: numeric_date(&claims, "iat")?,
            auth_time: numeric_date(&claims, "auth_time")?,
        };
        self.check_times(&times)?;
        let audience = audience.to_owned();
        let user = user_from_claims(
            claims,
            &audience,
            &self.issuer,
            times.exp,
            times.iat,
            &self.rules,
        )?;
        Ok((user, times))
    }
}

/// A NumericDate claim: an integer number of seconds; anything else
/// (string, float, null, bool) is invalid.
fn numeric_date(claims: &Map<String, Value>, name: &str) -> Result<Option<i64>, InvalidToken> {
    match claims.get(name) {
        None => Ok(None),
        Some(Value::Number(number)) => number
            .as_i64()
            .or_else(|| number.as_u64().map(|_| i64::MAX))
            .map(Some)
            .ok_or(InvalidToken::InvalidClaim),
        Some(_) => Err(InvalidToken::InvalidClaim),
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
    fn numeric_dates_must_be_integers() {
        let claims = json!({"a": 5, "b": "5", "c": 5.5, "d": null, "e": u64::MAX});
        let Value::Object(claims) = claims else {
            unreachable!()
        };
        assert_eq!(numeric_date(&claims, "a"), Ok(Some(5)));
        assert_eq!(numeric_date(&claims, "b"), Err(InvalidToken::InvalidClaim));
        assert_eq!(numeric_date(&claims, "c"), Err(InvalidToken::InvalidClaim));
        assert_eq!(numeric_date(&claims, "d"), Err(InvalidToken::InvalidClaim));
        assert_eq!(numeric_date(&claims, "e"), Ok(Some(i64::MAX)));
        assert_eq!(numeric_date(&claims, "z"), Ok(None));
    }

    #[test]
    fn segments_must_be_strict_base64url() {
        assert!(decode_segment("eyJhIjoxfQ").is_ok());
        assert!(decode_segment("eyJhIjoxfQ==").is_err());
        assert!(decode_segment("ab+/").is_err());
        assert!(decode_segment("ey Jh").is_err());
    }
}

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
//! 4. the key: by `kid` from the JWKS cache, or the single fitting key
//!    (several meinGPT organizations: from the key set of each configured
//!    organization the token's `aud` names, until one verifies);
//! 5. the signature. Until it has verified, an unknown key, a bad signature
//!    and an audience not served are one refusal with one description;
//! 6. the claims: a JSON object without duplicate members; `iss` exact;
//!    `aud` (string or array of strings) containing a configured audience;
//!    `exp` required; `nbf` and `iat` not in the future (with leeway);
//!    times are JSON numbers (RFC 7519 NumericDate: fractions allowed and
//!    compared exactly, nothing but numbers, at most ±2^63 seconds); `sub` a
//!    non-empty string; every meinGPT claim of its documented type;
//! 7. the access-token profile, when configured: `typ` header, `azp`, and
//!    the maximum lifetime `exp - iat`.
//!
//! With several issuers configured ([`Verifiers`]), the token's `iss`, read
//! from the claims before anything else is trusted, chooses the issuer by
//! exact comparison; its own algorithms, keys, audiences and claim rules
//! then apply from step 3 on. A token whose `iss` names none of them (or
//! has none) is refused before any key lookup, described like an unknown
//! key. With one issuer, `iss` is checked in step 6.

use std::sync::Arc;
use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::Algorithm;
use serde::Deserialize;
use serde_json::{Map, Value};

use crate::claims::{ClaimRules, MeinGptUser, SignedPayload, user_from_claims};
use crate::clock::SharedClock;
use crate::error::{AuthError, InvalidToken};
use crate::jose::{JoseHeader, NumericDate, RegisteredClaims, Round, numeric_date};
use crate::json::{self, Member, parse_object};
use crate::jwks::{JwksCache, KeyLookup, KeyWait, SourceId, Waited};
use crate::keys::VerifyingKey;
use crate::metrics;

mod cache;
mod profile;
mod verifiers;

use cache::Entry;
pub(crate) use cache::VerifiedTokens;
pub(crate) use profile::TokenProfile;
pub(crate) use verifiers::Verifiers;

const TARGET: &str = "meingpt_auth::verify";

/// No verified token is remembered for longer than this, whatever its `exp`.
const MAX_CACHE_LIFETIME: Duration = Duration::from_secs(24 * 3600);

/// What trying once without waiting gives: the verdict, or a wait for an
/// issuer's keys after which to try again.
///
/// One word per idea: a `try_` method (`MeinGptAuth::try_authenticate`,
/// `Verifiers::try_verify`, and `Verifier::try_verify_fresh` for a token no
/// cache answered for) tries once and
/// never waits; the method without the prefix (`authenticate`, `verify`)
/// waits for the verdict, through [`Attempt::wait_for`].
#[derive(Debug)]
pub(crate) enum Attempt<T> {
    Done(T),
    Wait(KeyWait),
}

impl<T> Attempt<T> {
    /// The verdict of `try_once`, tried again after each wait for keys
    /// until it gives one; `try_once` gets what was waited for so far.
    pub(crate) async fn wait_for(mut try_once: impl FnMut(&mut Waited) -> Self) -> T {
        let mut waited = Waited::default();
        loop {
            match try_once(&mut waited) {
                Self::Done(outcome) => return outcome,
                // How the fetch ended shows in the next try.
                Self::Wait(wait) => drop(wait.await),
            }
        }
    }

    pub(crate) fn map<U>(self, f: impl FnOnce(T) -> U) -> Attempt<U> {
        match self {
            Self::Done(outcome) => Attempt::Done(f(outcome)),
            Self::Wait(wait) => Attempt::Wait(wait),
        }
    }
}

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
    /// Accepted audiences, each with its key source.
    pub(crate) audiences: Vec<(String, SourceId)>,
    pub(crate) leeway: Duration,
    pub(crate) max_token_size: usize,
    pub(crate) keys: Keys,
    pub(crate) rules: ClaimRules,
    /// Require `auth_time` no older than this (RFC 9470).
    pub(crate) max_auth_age: Option<Duration>,
    pub(crate) clock: SharedClock,
    /// Optional access-token checks (all off by default).
    pub(crate) profile: TokenProfile,
}

/// What a [`Verifier`] checks, as the configuration settled it.
#[derive(Debug)]
pub(crate) struct VerifierSettings {
    /// The algorithms accepted before any key is looked at.
    pub(crate) algorithms: Vec<Algorithm>,
    pub(crate) issuer: String,
    /// Accepted audiences, each with its key source.
    pub(crate) audiences: Vec<(String, SourceId)>,
    pub(crate) leeway: Duration,
    pub(crate) max_token_size: usize,
    pub(crate) rules: ClaimRules,
    pub(crate) max_auth_age: Option<Duration>,
    pub(crate) profile: TokenProfile,
}

impl Verifier {
    /// Whether the issuer is an OpenID Connect issuer (keys from discovery
    /// or a JWKS, not a meinGPT instance's, not a static key).
    pub(crate) fn is_oidc(&self) -> bool {
        !self.rules.meingpt && matches!(self.keys, Keys::Jwks(_))
    }

    /// A verifier that checks tokens as `settings` say, with `keys`, at the
    /// time `clock` tells.
    pub(crate) fn new(settings: VerifierSettings, keys: Keys, clock: SharedClock) -> Self {
        let VerifierSettings {
            algorithms,
            issuer,
            audiences,
            leeway,
            max_token_size,
            rules,
            max_auth_age,
            profile,
        } = settings;
        Self {
            algorithms,
            issuer,
            audiences,
            leeway,
            max_token_size,
            keys,
            rules,
            max_auth_age,
            clock,
            profile,
        }
    }
}

/// A verified token: the user, the times to check again, and the key that
/// verified it.
#[derive(Debug)]
pub(crate) struct Verified {
    user: MeinGptUser,
    times: Times,
    source: SourceId,
    /// The very key object that verified the signature.
    key: Arc<VerifyingKey>,
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

struct Header {
    alg: Algorithm,
    kid: Option<String>,
}

/// Why a verification that does not wait has no user yet.
#[derive(Debug)]
pub(crate) enum Unverified {
    /// The token is refused.
    Refused(AuthError),
    /// The keys are being fetched: wait, then verify again.
    Waiting(KeyWait),
}

impl From<AuthError> for Unverified {
    fn from(error: AuthError) -> Self {
        Self::Refused(error)
    }
}

impl From<InvalidToken> for Unverified {
    fn from(reason: InvalidToken) -> Self {
        Self::Refused(reason.into())
    }
}

impl Verifier {
    /// Whether a verdict given by `key` of `source` may be used now: the key
    /// is still in the source's current key set and that set is within the
    /// stale limit. Starts a due key refresh in the background.
    fn still_holds(&self, source: SourceId, key: &Arc<VerifyingKey>, now: Duration) -> bool {
        match &self.keys {
            Keys::Jwks(jwks) => jwks.still_holds(source, key, now),
            Keys::Static(_) => true,
        }
    }

    /// Verifies `token`, which no cache answered for, by this issuer's keys
    /// and rules, without waiting: [`Unverified::Waiting`] when a key set
    /// has to be fetched first (then try again with the same `waited`).
    fn try_verify_fresh(&self, token: &str, waited: &mut Waited) -> Result<Verified, Unverified> {
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
        let message = &token.as_bytes()[..header_b64.len() + 1 + claims_b64.len()];
        let (key, source) = match &self.keys {
            Keys::Static(key) => {
                if !key.verify(header.alg, message, &signature) {
                    return Err(InvalidToken::BadSignature.into());
                }
                (key.clone(), SourceId(0))
            }
            Keys::Jwks(jwks) => {
                self.verify_with_jwks(jwks, &header, message, &signature, &claims_bytes, waited)?
            }
        };
        let claims = parse_object(&claims_bytes).ok_or(InvalidToken::Malformed)?;
        let payload = header_b64.len() + 1..message.len();
        let signed = SignedPayload::new(token.into(), payload);
        let (user, times) = self.user(&claims, signed, source)?;
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
            key,
            lifetime: Duration::from_secs(remaining as u64).min(MAX_CACHE_LIFETIME),
        })
    }

    /// Finds the key and checks the signature. Audiences on one JWKS: ask
    /// it. On several (meinGPT organizations): each configured organization
    /// the token's `aud` names is asked in turn, until one holds a key that
    /// verifies the signature (`aud` is checked again after it).
    ///
    /// Before the signature has verified, an unknown key, a bad signature
    /// and an audience not served are one and the same refusal.
    fn verify_with_jwks(
        &self,
        jwks: &Arc<JwksCache>,
        header: &Header,
        message: &[u8],
        signature: &[u8],
        claims: &[u8],
        waited: &mut Waited,
    ) -> Result<(Arc<VerifyingKey>, SourceId), Unverified> {
        let candidates = match self.audiences.as_slice() {
            [(_, source), rest @ ..] if rest.iter().all(|(_, s)| s == source) => vec![*source],
            _ => self.sources_for(claims)?,
        };
        let mut refusal = InvalidToken::UnknownKey;
        let mut other = None;
        for source in candidates {
            match jwks.key(source, header.kid.as_deref(), header.alg, waited) {
                KeyLookup::Found(key) if key.verify(header.alg, message, signature) => {
                    return Ok((key, source));
                }
                KeyLookup::Found(_) => refusal = InvalidToken::BadSignature,
                KeyLookup::Refused(AuthError::InvalidToken(InvalidToken::UnknownKey)) => {}
                KeyLookup::Refused(error) => {
                    other.get_or_insert(error);
                }
                KeyLookup::Wait(wait) => return Err(Unverified::Waiting(wait)),
            }
        }
        Err(Unverified::Refused(other.unwrap_or(refusal.into())))
    }

    /// `exp`, `nbf`, `iat` and `auth_time` against `now` (the clock's),
    /// with leeway, to the nanosecond.
    fn check_times(&self, times: &Times, now: Duration) -> Result<(), AuthError> {
        let now = NumericDate::from_duration(now);
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
        let header: JoseHeader = json::parse(bytes).ok_or(InvalidToken::Malformed)?;
        let Member::Present(alg) = header.alg else {
            return Err(InvalidToken::Malformed);
        };
        let alg = alg
            .parse::<Algorithm>()
            .ok()
            .filter(|alg| self.algorithms.contains(alg))
            .ok_or(InvalidToken::UnsupportedAlgorithm)?;
        if header.crit.is_present() || header.b64.is_present() {
            return Err(InvalidToken::UnsupportedHeader);
        }
        if !self.profile.type_matches(&header.typ) {
            return Err(InvalidToken::WrongTokenType);
        }
        match header.cty {
            Member::Absent => {}
            Member::Present(cty) if !cty.eq_ignore_ascii_case("JWT") => {}
            _ => return Err(InvalidToken::UnsupportedHeader),
        }
        let kid = match header.kid.optional(InvalidToken::Malformed)? {
            Some(kid) if kid.len() > 256 => return Err(InvalidToken::UnknownKey),
            kid => kid,
        };
        Ok(Header { alg, kid })
    }

    /// Reads `aud` before verification, only to choose the key sources to
    /// ask: those of the configured audiences it names, in its order. None
    /// is refused like an unknown key.
    fn sources_for(&self, claims: &[u8]) -> Result<Vec<SourceId>, InvalidToken> {
        let claims: RegisteredClaims = json::parse(claims).ok_or(InvalidToken::Malformed)?;
        let mut sources = Vec::new();
        for aud in claims.audiences()? {
            if let Some(source) = self.source_of(aud)
                && !sources.contains(&source)
            {
                sources.push(source);
            }
        }
        if sources.is_empty() {
            return Err(InvalidToken::UnknownKey);
        }
        Ok(sources)
    }

    /// The key source of a configured audience.
    fn source_of(&self, aud: &str) -> Option<SourceId> {
        self.audiences
            .iter()
            .find(|(configured, _)| configured == aud)
            .map(|(_, source)| *source)
    }

    fn user(
        &self,
        claims: &Map<String, Value>,
        signed: SignedPayload,
        source: SourceId,
    ) -> Result<(MeinGptUser, Times), AuthError> {
        let mut registered =
            RegisteredClaims::deserialize(claims).map_err(|_| InvalidToken::Malformed)?;
        match &registered.iss {
            Member::Absent => return Err(InvalidToken::MissingClaim.into()),
            Member::Present(iss) if *iss == self.issuer => {}
            Member::Present(_) => return Err(InvalidToken::WrongIssuer.into()),
            Member::Invalid => return Err(InvalidToken::InvalidClaim.into()),
        }
        // The first audience in `aud` that is configured and served by the
        // key source that verified the signature.
        let audience = registered
            .audiences()?
            .iter()
            .find(|aud| self.source_of(aud) == Some(source))
            .ok_or(InvalidToken::WrongAudience)?
            .clone();
        let take = std::mem::take;
        let times = Times {
            exp: numeric_date(take(&mut registered.exp), Round::Down)?
                .ok_or(InvalidToken::MissingClaim)?,
            nbf: numeric_date(take(&mut registered.nbf), Round::Up)?,
            iat: numeric_date(take(&mut registered.iat), Round::Up)?,
            auth_time: numeric_date(take(&mut registered.auth_time), Round::Down)?,
        };
        self.check_times(&times, self.clock.now())?;
        self.check_profile(&registered, &times)?;
        let user = user_from_claims(
            claims,
            signed,
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
    fn check_profile(&self, claims: &RegisteredClaims, times: &Times) -> Result<(), AuthError> {
        let profile = &self.profile;
        if !profile.authorized_parties.is_empty() {
            match &claims.azp {
                Member::Absent => return Err(InvalidToken::MissingClaim.into()),
                Member::Present(azp) if profile.authorized_parties.contains(azp) => {}
                Member::Present(_) => return Err(InvalidToken::WrongAuthorizedParty.into()),
                Member::Invalid => return Err(InvalidToken::InvalidClaim.into()),
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
            assert!(profile.type_matches(&Member::Present(typ.into())), "{typ}");
        }
        for typ in [json!("JWT"), json!("at+jwt "), json!(["at+jwt"])] {
            let typ = serde_json::from_value(typ).unwrap();
            assert!(!profile.type_matches(&typ), "{typ:?}");
        }
        assert!(!profile.type_matches(&Member::Absent));
        assert!(TokenProfile::default().type_matches(&Member::Absent));
    }

    #[test]
    fn segments_must_be_strict_base64url() {
        assert!(decode_segment("eyJhIjoxfQ").is_ok());
        assert!(decode_segment("eyJhIjoxfQ==").is_err());
        assert!(decode_segment("ab+/").is_err());
        assert!(decode_segment("ey Jh").is_err());
    }
}

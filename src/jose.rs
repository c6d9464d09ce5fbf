//! The JOSE header (RFC 7515 §4.1) and the registered claims (RFC 7519 §4.1)
//! as typed documents, read through the strict JSON of [`crate::json`].
//!
//! Every member is a [`Member`]: absent, of its type, or wrongly typed. What
//! each case means for a token (malformed, an invalid claim, a missing one)
//! is decided where the member is checked, in `verify`.

use std::time::Duration;

use serde::Deserialize;
use serde::de::{self, Deserializer, IgnoredAny};
use serde_json::Number;

use crate::error::InvalidToken;
use crate::json::Member;

/// The header members a token is checked by; `jku`, `x5u`, `jwk` and `x5c`
/// are not read (keys come only from the configured sources).
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub(crate) struct JoseHeader {
    pub(crate) alg: Member<String>,
    pub(crate) kid: Member<String>,
    pub(crate) typ: Member<String>,
    pub(crate) cty: Member<String>,
    /// Refused whatever its value.
    pub(crate) crit: Member<IgnoredAny>,
    /// Refused whatever its value (RFC 7797 unencoded payloads).
    pub(crate) b64: Member<IgnoredAny>,
}

/// The registered claims a token is checked by; all other claims are read
/// from the claims object by `claims`.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub(crate) struct RegisteredClaims {
    pub(crate) iss: Member<String>,
    aud: Member<OneOrMany<String>>,
    pub(crate) exp: Member<Seconds>,
    pub(crate) nbf: Member<Seconds>,
    pub(crate) iat: Member<Seconds>,
    pub(crate) auth_time: Member<Seconds>,
    pub(crate) azp: Member<String>,
}

impl RegisteredClaims {
    /// The token's `aud`: one string or a non-empty array of strings.
    pub(crate) fn audiences(&self) -> Result<&[String], InvalidToken> {
        match &self.aud {
            Member::Absent => Err(InvalidToken::MissingClaim),
            Member::Present(OneOrMany::One(aud)) => Ok(std::slice::from_ref(aud)),
            Member::Present(OneOrMany::Many(auds)) if !auds.is_empty() => Ok(auds),
            _ => Err(InvalidToken::InvalidClaim),
        }
    }
}

/// One value or an array of them, as `aud` may be (RFC 7519 §4.1.3).
#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum OneOrMany<T> {
    One(T),
    Many(Vec<T>),
}

/// A NumericDate claim (RFC 7519 §2) as the token wrote it: a JSON number of
/// seconds since the epoch, fractions allowed. Strings, booleans, null and
/// values beyond ±2^63 seconds do not deserialize; an integer beyond that
/// (up to 2^64 - 1) means "far in the future".
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) enum Seconds {
    Whole(i64),
    /// Finite and within ±2^63.
    Fraction(f64),
}

impl<'de> Deserialize<'de> for Seconds {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        // 2^63 as a double; anything at or beyond it is out of range.
        const LIMIT: f64 = 9_223_372_036_854_775_808.0;
        let number = Number::deserialize(deserializer)?;
        if let Some(seconds) = number.as_i64() {
            return Ok(Self::Whole(seconds));
        }
        if number.as_u64().is_some() {
            return Ok(Self::Whole(i64::MAX));
        }
        match number.as_f64() {
            Some(seconds) if seconds.is_finite() && (-LIMIT..LIMIT).contains(&seconds) => {
                Ok(Self::Fraction(seconds))
            }
            _ => Err(de::Error::custom("NumericDate out of range")),
        }
    }
}

/// Which way a NumericDate's fraction of a nanosecond is rounded: down for
/// `exp` (a token never lives longer), up for `nbf` and `iat` (never valid
/// sooner).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Round {
    Down,
    Up,
}

impl Seconds {
    /// The instant, to the nanosecond, rounded `round`.
    pub(crate) fn at(self, round: Round) -> NumericDate {
        match self {
            Self::Whole(seconds) => NumericDate(i128::from(seconds) * NANOS),
            Self::Fraction(seconds) => {
                // Both steps are exact: the whole part fits in i64 and
                // `seconds - whole` is a double in [0, 1).
                let whole = seconds.floor();
                let fraction = (seconds - whole) * 1e9;
                let nanos = match round {
                    Round::Down => fraction.floor(),
                    Round::Up => fraction.ceil(),
                };
                NumericDate(i128::from(whole as i64) * NANOS + nanos as i128)
            }
        }
    }
}

/// A NumericDate claim rounded `round`: `None` when absent, `InvalidClaim`
/// when not a number in range.
pub(crate) fn numeric_date(
    member: Member<Seconds>,
    round: Round,
) -> Result<Option<NumericDate>, InvalidToken> {
    Ok(member
        .optional(InvalidToken::InvalidClaim)?
        .map(|seconds| seconds.at(round)))
}

/// A NumericDate (RFC 7519 §2): nanoseconds since the Unix epoch. A
/// fraction finer than a nanosecond is rounded the way that never lengthens
/// a token's validity (see [`Round`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) struct NumericDate(i128);

const NANOS: i128 = 1_000_000_000;

impl NumericDate {
    pub(crate) fn from_duration(at: Duration) -> Self {
        Self(at.as_nanos() as i128)
    }

    /// Whole seconds, rounded down.
    pub(crate) fn whole_seconds(self) -> i64 {
        self.0.div_euclid(NANOS) as i64
    }

    pub(crate) fn plus(self, by: Duration) -> Self {
        Self(self.0 + by.as_nanos() as i128)
    }

    pub(crate) fn minus(self, by: Duration) -> Self {
        Self(self.0 - by.as_nanos() as i128)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{Value, json};

    fn date(value: Value, round: Round) -> Result<Option<NumericDate>, InvalidToken> {
        numeric_date(serde_json::from_value(value).unwrap(), round)
    }

    #[test]
    fn numeric_dates_are_numbers_with_exact_fractions() {
        let at = |value| date(value, Round::Down);
        let nanos = |n: i128| Ok(Some(NumericDate(n)));
        assert_eq!(at(json!(5)), nanos(5 * NANOS));
        assert_eq!(at(json!("5")), Err(InvalidToken::InvalidClaim));
        assert_eq!(at(json!(5.5)), nanos(5 * NANOS + NANOS / 2));
        assert_eq!(at(json!(null)), Err(InvalidToken::InvalidClaim));
        assert_eq!(at(json!(u64::MAX)), nanos(i128::from(i64::MAX) * NANOS));
        assert_eq!(at(json!(-1.25)), nanos(-NANOS - NANOS / 4));
        assert_eq!(at(json!(1e300)), Err(InvalidToken::InvalidClaim));
        assert_eq!(at(json!(true)), Err(InvalidToken::InvalidClaim));
        assert_eq!(at(json!(1.0e10)), nanos(10_000_000_000 * NANOS));
        assert_eq!(at(json!(0.1)), nanos(100_000_000));
        assert_eq!(numeric_date(Member::Absent, Round::Down), Ok(None));
        assert_eq!(date(json!(5.5), Round::Up), nanos(5 * NANOS + NANOS / 2));
        assert_eq!(NumericDate(-NANOS / 2).whole_seconds(), -1);
    }

    #[test]
    fn fractions_finer_than_a_nanosecond_round_per_claim() {
        let at = |round| date(json!(1.000_000_000_5), round);
        assert_eq!(at(Round::Down), Ok(Some(NumericDate(NANOS))));
        assert_eq!(at(Round::Up), Ok(Some(NumericDate(NANOS + 1))));
    }

    #[test]
    fn audiences_are_one_string_or_a_non_empty_array_of_strings() {
        let audiences = |claims: Value| {
            let claims: RegisteredClaims = serde_json::from_value(claims).unwrap();
            claims.audiences().map(<[String]>::to_vec)
        };
        assert_eq!(audiences(json!({"aud": "a"})), Ok(vec!["a".to_owned()]));
        assert_eq!(
            audiences(json!({"aud": ["a", "b"]})),
            Ok(vec!["a".to_owned(), "b".to_owned()])
        );
        assert_eq!(audiences(json!({})), Err(InvalidToken::MissingClaim));
        for wrong in [json!([]), json!(["a", 1]), json!(null), json!(1), json!({})] {
            assert_eq!(
                audiences(json!({ "aud": wrong })),
                Err(InvalidToken::InvalidClaim),
                "{wrong}"
            );
        }
    }

    #[test]
    fn header_members_of_another_type_are_told_from_absent_ones() {
        let header: JoseHeader =
            serde_json::from_value(json!({"alg": "RS256", "kid": 7, "crit": null})).unwrap();
        assert_eq!(header.alg, Member::Present("RS256".to_owned()));
        assert_eq!(header.kid, Member::Invalid);
        assert!(header.crit.is_present());
        assert!(!header.b64.is_present());
        assert_eq!(header.typ, Member::Absent);
    }
}

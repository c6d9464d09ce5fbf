//! Verification keys, parsed once (when a JWKS is fetched or the
//! configuration is built) and used for every request after.
//!
//! Asymmetric keys are held as aws-lc-rs `ParsedPublicKey`s, one per
//! algorithm the key may verify, so a request pays for the signature check
//! and nothing else: no key parsing, no allocation. HMAC secrets (static
//! configuration only, never from a JWKS) are held as aws-lc-rs HMAC keys and
//! compared in constant time.

use std::fmt;

use aws_lc_rs::hmac;
use aws_lc_rs::signature::{self, ParsedPublicKey, RsaPublicKeyComponents};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::{Algorithm, AlgorithmFamily};
use serde::Deserialize;
use serde::de::IgnoredAny;
use serde_json::Value;

use crate::json::Member;

mod configured;

pub(crate) use configured::from_config;

const TARGET: &str = "meingpt_auth::jwks";

/// Every asymmetric algorithm this crate verifies.
pub(crate) const ASYMMETRIC: [Algorithm; 9] = [
    Algorithm::RS256,
    Algorithm::RS384,
    Algorithm::RS512,
    Algorithm::PS256,
    Algorithm::PS384,
    Algorithm::PS512,
    Algorithm::ES256,
    Algorithm::ES384,
    Algorithm::EdDSA,
];

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum KeyKind {
    Rsa,
    Ec(Algorithm),
    Ed25519,
    Hmac(Algorithm),
}

impl KeyKind {
    fn fits(self, alg: Algorithm) -> bool {
        match self {
            Self::Rsa => alg.family() == AlgorithmFamily::Rsa,
            Self::Ec(own) | Self::Hmac(own) => alg == own,
            Self::Ed25519 => alg == Algorithm::EdDSA,
        }
    }
}

enum Check {
    Public(ParsedPublicKey),
    Hmac(Box<hmac::Key>),
}

/// A key that verifies signatures with exactly one algorithm (RFC 8725
/// §3.1): its JWK's `alg`, else the one its kind implies (see [`from_jwk`]).
pub(crate) struct VerifyingKey {
    kid: Option<String>,
    kind: KeyKind,
    alg: Algorithm,
    check: Check,
    /// The public key material, to tell identical duplicates from conflicts.
    material: Vec<u8>,
}

impl fmt::Debug for VerifyingKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("VerifyingKey")
            .field("kid", &self.kid)
            .field("kind", &self.kind)
            .field("alg", &self.alg)
            .finish_non_exhaustive()
    }
}

impl VerifyingKey {
    pub(crate) fn kid(&self) -> Option<&str> {
        self.kid.as_deref()
    }

    /// Whether this key verifies `alg` (its one algorithm).
    pub(crate) fn fits(&self, alg: Algorithm) -> bool {
        self.alg == alg
    }

    pub(crate) fn same_material(&self, other: &VerifyingKey) -> bool {
        self.kind == other.kind && self.material == other.material
    }

    /// Whether `other` is this very key with the same permissions: `kid`,
    /// material and algorithm alike (a key whose usage no longer allows
    /// verification is not in a key set at all).
    pub(crate) fn same_key(&self, other: &VerifyingKey) -> bool {
        self.kid == other.kid && self.alg == other.alg && self.same_material(other)
    }

    /// Whether `signature` over `message` verifies with this key under `alg`.
    pub(crate) fn verify(&self, alg: Algorithm, message: &[u8], signature: &[u8]) -> bool {
        if alg != self.alg {
            return false;
        }
        match &self.check {
            Check::Public(key) => key.verify_sig(message, signature).is_ok(),
            Check::Hmac(key) => hmac::verify(key, message, signature).is_ok(),
        }
    }

    /// Parses the key for `alg`; `None` when it does not fit.
    fn build(
        kid: Option<String>,
        kind: KeyKind,
        material: Vec<u8>,
        alg: Algorithm,
        parse: impl Fn(Algorithm) -> Option<Check>,
    ) -> Option<Self> {
        if !kind.fits(alg) {
            return None;
        }
        let check = parse(alg)?;
        Some(Self {
            kid,
            kind,
            alg,
            check,
            material,
        })
    }
}

/// The one algorithm an RSA key without `alg` verifies: RS256 when it is
/// accepted, else the only RSA algorithm accepted; `None` (key skipped)
/// when several RSA algorithms but not RS256 are accepted.
fn rsa_default(algorithms: &[Algorithm]) -> Option<Algorithm> {
    if algorithms.contains(&Algorithm::RS256) {
        return Some(Algorithm::RS256);
    }
    let mut rsa = algorithms
        .iter()
        .copied()
        .filter(|alg| alg.family() == AlgorithmFamily::Rsa);
    match (rsa.next(), rsa.next()) {
        (Some(only), None) => Some(only),
        _ => None,
    }
}

fn rsa_params(alg: Algorithm) -> Option<&'static signature::RsaParameters> {
    Some(match alg {
        Algorithm::RS256 => &signature::RSA_PKCS1_2048_8192_SHA256,
        Algorithm::RS384 => &signature::RSA_PKCS1_2048_8192_SHA384,
        Algorithm::RS512 => &signature::RSA_PKCS1_2048_8192_SHA512,
        Algorithm::PS256 => &signature::RSA_PSS_2048_8192_SHA256,
        Algorithm::PS384 => &signature::RSA_PSS_2048_8192_SHA384,
        Algorithm::PS512 => &signature::RSA_PSS_2048_8192_SHA512,
        _ => return None,
    })
}

fn public_params(alg: Algorithm) -> Option<&'static dyn signature::VerificationAlgorithm> {
    Some(match alg {
        Algorithm::ES256 => &signature::ECDSA_P256_SHA256_FIXED,
        Algorithm::ES384 => &signature::ECDSA_P384_SHA384_FIXED,
        Algorithm::EdDSA => &signature::ED25519,
        other => rsa_params(other)?,
    })
}

fn rsa_bits(n: &[u8]) -> usize {
    match n.first() {
        Some(first) => n.len() * 8 - first.leading_zeros() as usize,
        None => 0,
    }
}

/// A key from a JWKS entry, usable with `algorithms`; `None` (skipped) when
/// it is not a signature key, has private members, is too weak, or fits none
/// of the algorithms. Symmetric (`oct`) keys are never taken from a JWKS.
///
/// One key, one algorithm (RFC 8725 §3.1): a key with `alg` verifies that
/// algorithm only; a key without it verifies its curve's (ES256 for P-256,
/// ES384 for P-384, EdDSA for Ed25519) or, for RSA, RS256 when RS256 is
/// accepted, else the only RSA algorithm accepted (configured, or listed by
/// the discovery document); with several RSA algorithms but not RS256
/// accepted, an RSA key without `alg` is skipped.
pub(crate) fn from_jwk(jwk: Jwk, algorithms: &[Algorithm]) -> Option<VerifyingKey> {
    if jwk.has_private_members() {
        tracing::warn!(target: TARGET, "JWKS key with private members skipped");
        return None;
    }
    match jwk.usage {
        Member::Absent => {}
        Member::Present(usage) if usage == "sig" => {}
        _ => return None,
    }
    match jwk.key_ops {
        Member::Absent => {}
        Member::Present(ops) if ops.iter().any(|op| op == "verify") => {}
        _ => return None,
    }
    // A key that names its algorithm is used with that algorithm only; a
    // key that does not, with the one its kind implies.
    let named = match &jwk.alg {
        Member::Absent => None,
        Member::Present(name) => Some(
            name.parse::<Algorithm>()
                .ok()
                .filter(|alg| algorithms.contains(alg))?,
        ),
        Member::Invalid => return None,
    };
    let implied = |alg: Algorithm| algorithms.contains(&alg).then_some(alg);
    let crv = jwk.crv.value().map(String::as_str);
    let kid = match jwk.kid {
        Member::Absent => None,
        Member::Present(kid) => Some(kid),
        Member::Invalid => return None,
    };
    match jwk.kty.value()?.as_str() {
        "RSA" => rsa_key(
            kid,
            b64(&jwk.n)?,
            b64(&jwk.e)?,
            named.or_else(|| rsa_default(algorithms))?,
        ),
        "EC" => {
            let (alg, size) = match crv? {
                "P-256" => (Algorithm::ES256, 32),
                "P-384" => (Algorithm::ES384, 48),
                _ => return None,
            };
            let x = b64(&jwk.x)?;
            let y = b64(&jwk.y)?;
            if x.len() != size || y.len() != size {
                return None;
            }
            let point = [&[4u8][..], &x, &y].concat();
            public_key(
                kid,
                KeyKind::Ec(alg),
                point,
                named.or_else(|| implied(alg))?,
            )
        }
        "OKP" => {
            if crv? != "Ed25519" {
                return None;
            }
            let x = b64(&jwk.x)?;
            if x.len() != 32 {
                return None;
            }
            let alg = named.or_else(|| implied(Algorithm::EdDSA))?;
            public_key(kid, KeyKind::Ed25519, x, alg)
        }
        _ => None,
    }
}

/// A JSON Web Key's members as this crate reads them (RFC 7517 §4, RFC 7518
/// §6). A member of an unexpected type makes the key unusable, never the
/// key set.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub(crate) struct Jwk {
    kty: Member<String>,
    #[serde(rename = "use")]
    usage: Member<String>,
    key_ops: Member<Vec<Value>>,
    alg: Member<String>,
    kid: Member<String>,
    crv: Member<String>,
    n: Member<String>,
    e: Member<String>,
    x: Member<String>,
    y: Member<String>,
    /// The private members of RSA, EC and OKP keys and a symmetric key's
    /// `k`: any of them, whatever its value, and the key is not used.
    d: Member<IgnoredAny>,
    p: Member<IgnoredAny>,
    q: Member<IgnoredAny>,
    dp: Member<IgnoredAny>,
    dq: Member<IgnoredAny>,
    qi: Member<IgnoredAny>,
    oth: Member<IgnoredAny>,
    k: Member<IgnoredAny>,
}

impl Jwk {
    fn has_private_members(&self) -> bool {
        [
            &self.d, &self.p, &self.q, &self.dp, &self.dq, &self.qi, &self.oth, &self.k,
        ]
        .iter()
        .any(|member| member.is_present())
    }
}

/// An RSA key from its modulus and exponent (big-endian): 2048-8192 bits,
/// an odd exponent above 1 of at most 32 bits.
fn rsa_key(kid: Option<String>, n: Vec<u8>, e: Vec<u8>, alg: Algorithm) -> Option<VerifyingKey> {
    let n = strip_leading_zeros(n);
    let e = strip_leading_zeros(e);
    let bits = rsa_bits(&n);
    let e_ok = !e.is_empty() && e.len() <= 4 && e.last()? & 1 == 1 && e != [1];
    if !(2048..=8192).contains(&bits) || !e_ok {
        tracing::warn!(
            target: TARGET,
            bits,
            "RSA key outside 2048-8192 bits or with a bad exponent skipped"
        );
        return None;
    }
    let components = RsaPublicKeyComponents {
        n: &n[..],
        e: &e[..],
    };
    let parse = |alg| {
        components
            .to_parsed_public_key(rsa_params(alg)?)
            .ok()
            .map(Check::Public)
    };
    VerifyingKey::build(kid, KeyKind::Rsa, [&n[..], &e[..]].concat(), alg, parse)
}

fn public_key(
    kid: Option<String>,
    kind: KeyKind,
    bytes: Vec<u8>,
    alg: Algorithm,
) -> Option<VerifyingKey> {
    let parse = |alg| {
        ParsedPublicKey::new(public_params(alg)?, &bytes)
            .ok()
            .map(Check::Public)
    };
    VerifyingKey::build(kid, kind, bytes.clone(), alg, parse)
}

/// A base64url member's bytes; `None` when absent, not a string or not
/// base64url.
fn b64(member: &Member<String>) -> Option<Vec<u8>> {
    URL_SAFE_NO_PAD.decode(member.value()?).ok()
}

fn strip_leading_zeros(bytes: Vec<u8>) -> Vec<u8> {
    let zeros = bytes.iter().take_while(|b| **b == 0).count();
    if zeros == 0 {
        bytes
    } else {
        bytes[zeros..].to_vec()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn jwk_members_of_the_wrong_type_make_the_key_unusable() {
        let jwk = |value: Value| serde_json::from_value::<Jwk>(value).unwrap();
        let n = URL_SAFE_NO_PAD.encode({
            let mut n = vec![0xC5u8; 256];
            n[255] |= 1;
            n
        });
        let good = serde_json::json!({"kty": "RSA", "n": n, "e": "AQAB"});
        assert!(from_jwk(jwk(good.clone()), &[Algorithm::RS256]).is_some());
        for (member, wrong) in [
            ("kid", serde_json::json!(1)),
            ("alg", serde_json::json!(null)),
            ("use", serde_json::json!(["sig"])),
            ("key_ops", serde_json::json!("verify")),
            ("kty", serde_json::json!(["RSA"])),
            ("e", serde_json::json!(65537)),
            ("d", serde_json::json!(null)),
        ] {
            let mut key = good.clone();
            key[member] = wrong;
            assert!(
                from_jwk(jwk(key), &[Algorithm::RS256]).is_none(),
                "{member}"
            );
        }
    }
}

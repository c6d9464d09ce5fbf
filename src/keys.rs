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
use jsonwebtoken::{Algorithm, DecodingKey};
use serde_json::{Map, Value};

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
            Self::Rsa => matches!(
                alg,
                Algorithm::RS256
                    | Algorithm::RS384
                    | Algorithm::RS512
                    | Algorithm::PS256
                    | Algorithm::PS384
                    | Algorithm::PS512
            ),
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
        .filter(|alg| KeyKind::Rsa.fits(*alg));
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

fn hmac_params(alg: Algorithm) -> Option<(hmac::Algorithm, usize)> {
    match alg {
        Algorithm::HS256 => Some((hmac::HMAC_SHA256, 32)),
        Algorithm::HS384 => Some((hmac::HMAC_SHA384, 48)),
        Algorithm::HS512 => Some((hmac::HMAC_SHA512, 64)),
        _ => None,
    }
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
pub(crate) fn from_jwk(jwk: &Map<String, Value>, algorithms: &[Algorithm]) -> Option<VerifyingKey> {
    const PRIVATE_MEMBERS: [&str; 8] = ["d", "p", "q", "dp", "dq", "qi", "oth", "k"];
    if PRIVATE_MEMBERS.iter().any(|name| jwk.contains_key(*name)) {
        tracing::warn!(target: TARGET, "JWKS key with private members skipped");
        return None;
    }
    match jwk.get("use") {
        None => {}
        Some(Value::String(usage)) if usage == "sig" => {}
        Some(_) => return None,
    }
    match jwk.get("key_ops") {
        None => {}
        Some(Value::Array(ops)) if ops.iter().any(|op| op == "verify") => {}
        Some(_) => return None,
    }
    // A key that names its algorithm is used with that algorithm only; a
    // key that does not, with the one its kind implies.
    let named = match jwk.get("alg") {
        None => None,
        Some(Value::String(name)) => {
            let alg = name.parse::<Algorithm>().ok()?;
            if !algorithms.contains(&alg) {
                return None;
            }
            Some(alg)
        }
        Some(_) => return None,
    };
    let implied = |alg: Algorithm| algorithms.contains(&alg).then_some(alg);
    let kid = match jwk.get("kid") {
        None => None,
        Some(Value::String(kid)) => Some(kid.clone()),
        Some(_) => return None,
    };
    match jwk.get("kty")?.as_str()? {
        "RSA" => rsa_key(
            kid,
            b64_member(jwk, "n")?,
            b64_member(jwk, "e")?,
            named.or_else(|| rsa_default(algorithms))?,
        ),
        "EC" => {
            let (alg, size) = match jwk.get("crv")?.as_str()? {
                "P-256" => (Algorithm::ES256, 32),
                "P-384" => (Algorithm::ES384, 48),
                _ => return None,
            };
            let x = b64_member(jwk, "x")?;
            let y = b64_member(jwk, "y")?;
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
            if jwk.get("crv")?.as_str()? != "Ed25519" {
                return None;
            }
            let x = b64_member(jwk, "x")?;
            if x.len() != 32 {
                return None;
            }
            let alg = named.or_else(|| implied(Algorithm::EdDSA))?;
            public_key(kid, KeyKind::Ed25519, x, alg)
        }
        _ => None,
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

/// A fixed key from configuration that cannot verify its algorithm; the
/// configuration names the setting it came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct KeyError {
    /// What is wrong with the key, never the key itself.
    pub(crate) reason: String,
}

impl KeyError {
    fn new(reason: impl Into<String>) -> Self {
        Self {
            reason: reason.into(),
        }
    }
}

/// A fixed key from configuration (OpenGPTs `jwt_local`): a PEM public key
/// for RS*/PS*/ES*/EdDSA, or a raw secret for HS*.
pub(crate) fn from_config(alg: Algorithm, key: &[u8]) -> Result<VerifyingKey, KeyError> {
    if let Some((hmac_alg, min_len)) = hmac_params(alg) {
        if key.len() < min_len {
            return Err(KeyError::new(format!(
                "an HS secret for this algorithm needs at least {min_len} bytes"
            )));
        }
        if let Some(found) = public_key_material(key) {
            return Err(KeyError::new(format!(
                "an HS algorithm takes a random shared secret, but this one holds {found} \
                     (whoever has the public key could sign tokens with it)"
            )));
        }
        let check = Check::Hmac(Box::new(hmac::Key::new(hmac_alg, key)));
        return Ok(VerifyingKey {
            kid: None,
            kind: KeyKind::Hmac(alg),
            alg,
            check,
            material: Vec::new(),
        });
    }
    let not_a_key = || {
        KeyError::new(format!(
            "{alg:?} needs {} in PEM, found {}",
            expected_key(alg),
            found_key(key)
        ))
    };
    let key = match alg {
        Algorithm::ES256 | Algorithm::ES384 => {
            let point = pem_bytes(DecodingKey::from_ec_pem(key)).ok_or_else(not_a_key)?;
            public_key(None, KeyKind::Ec(alg), point, alg)
        }
        Algorithm::EdDSA => {
            let x = pem_bytes(DecodingKey::from_ed_pem(key)).ok_or_else(not_a_key)?;
            public_key(None, KeyKind::Ed25519, x, alg)
        }
        _ => {
            let pkcs1 = pem_bytes(DecodingKey::from_rsa_pem(key)).ok_or_else(not_a_key)?;
            let (n, e) = rsa_components_from_pkcs1(&pkcs1).ok_or_else(not_a_key)?;
            let bits = rsa_bits(&strip_leading_zeros(n.clone()));
            if !(2048..=8192).contains(&bits) {
                return Err(KeyError::new(format!(
                    "{alg:?} needs an RSA key of 2048 to 8192 bits, found one of {bits} bits"
                )));
            }
            rsa_key(None, n, e, alg)
        }
    };
    // The PEM parsed but the key is unusable for `alg`: the wrong curve, or
    // an RSA exponent no verifier takes.
    key.ok_or_else(not_a_key)
}

/// The key `alg` verifies with, as the configuration errors name it.
fn expected_key(alg: Algorithm) -> &'static str {
    match alg {
        Algorithm::ES256 => "an EC P-256 public key",
        Algorithm::ES384 => "an EC P-384 public key",
        Algorithm::EdDSA => "an OKP (Ed25519) public key",
        _ => "an RSA public key",
    }
}

/// What a configured key is (type, curve, public or private), for errors;
/// never any of its bytes.
fn found_key(pem: &[u8]) -> String {
    const RSA: &[u8] = &[
        0x06, 0x09, 0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x01,
    ];
    const EC: &[u8] = &[0x06, 0x07, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x02, 0x01];
    const ED25519: &[u8] = &[0x06, 0x03, 0x2b, 0x65, 0x70];
    const P256: &[u8] = &[0x06, 0x08, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07];
    const P384: &[u8] = &[0x06, 0x05, 0x2b, 0x81, 0x04, 0x00, 0x22];
    const P521: &[u8] = &[0x06, 0x05, 0x2b, 0x81, 0x04, 0x00, 0x23];
    let contains = |der: &[u8], oid: &[u8]| der.windows(oid.len()).any(|w| w == oid);

    let text = String::from_utf8_lossy(pem);
    let Some(label) = text
        .split("-----BEGIN ")
        .nth(1)
        .and_then(|rest| rest.split_once("-----"))
        .map(|(label, _)| label.trim().to_owned())
    else {
        return "no PEM key (no -----BEGIN line)".to_owned();
    };
    let body: String = text
        .lines()
        .skip_while(|line| !line.starts_with("-----BEGIN"))
        .skip(1)
        .take_while(|line| !line.starts_with("-----END"))
        .filter(|line| !line.contains(':'))
        .collect::<String>()
        .split_whitespace()
        .collect();
    let der = base64::engine::general_purpose::STANDARD
        .decode(body)
        .unwrap_or_default();
    if label == "CERTIFICATE" {
        return "a certificate (give its public key: openssl x509 -pubkey -noout)".to_owned();
    }
    if !label.ends_with("KEY") {
        let printable =
            label.len() <= 40 && label.bytes().all(|b| b.is_ascii_uppercase() || b == b' ');
        return if printable {
            format!("a PEM block labelled {label}, not a key")
        } else {
            "a PEM block that is not a key".to_owned()
        };
    }
    let kind = if label.starts_with("RSA ") || contains(&der, RSA) {
        "an RSA".to_owned()
    } else if label.starts_with("EC ") || contains(&der, EC) {
        let curve = [(P256, "P-256"), (P384, "P-384"), (P521, "P-521")]
            .into_iter()
            .find(|(oid, _)| contains(&der, oid))
            .map_or("an unsupported curve", |(_, name)| name);
        format!("an EC {curve}")
    } else if contains(&der, ED25519) {
        "an OKP (Ed25519)".to_owned()
    } else {
        "an unsupported or damaged".to_owned()
    };
    if label.contains("PRIVATE") {
        // Naming the kind is all: never any of its bytes.
        format!("{kind} private key (give the public key: openssl pkey -pubout)")
    } else {
        format!("{kind} public key")
    }
}

/// What public-key material `secret` is or contains, if any: PEM armour
/// anywhere (after whitespace, a byte-order mark, inside other text), JWK
/// JSON (an object with `kty`), a DER `SubjectPublicKeyInfo` or PKCS#1
/// `RSAPublicKey` anywhere in it (also inside a certificate), an
/// uncompressed EC point, or the base64 text of such DER. Keys are parsed
/// with aws-lc-rs.
fn public_key_material(secret: &[u8]) -> Option<&'static str> {
    if contains(secret, b"-----BEGIN") {
        return Some("PEM text");
    }
    let text = std::str::from_utf8(secret).ok();
    if contains(secret, b"\"kty\"") || text.is_some_and(is_jwk_json) {
        return Some("a JWK (JSON with \"kty\")");
    }
    if let Some(found) = der_public_key(secret) {
        return Some(found);
    }
    let compact: Option<String> = text.map(|text| {
        text.chars()
            .filter(|c| !c.is_whitespace() && *c != '\u{feff}')
            .collect()
    });
    let decoded = compact.and_then(|compact| {
        base64::engine::general_purpose::STANDARD
            .decode(&compact)
            .or_else(|_| base64::engine::general_purpose::STANDARD_NO_PAD.decode(&compact))
            .ok()
    });
    if decoded.as_deref().and_then(der_public_key).is_some() {
        return Some("a base64-encoded public key");
    }
    None
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack
        .windows(needle.len())
        .any(|window| window == needle)
}

/// JSON (after a byte-order mark and whitespace) with an object that has a
/// `kty` member at any depth, however its name is escaped.
fn is_jwk_json(text: &str) -> bool {
    fn has_kty(value: &Value) -> bool {
        match value {
            Value::Object(map) => map.contains_key("kty") || map.values().any(has_kty),
            Value::Array(items) => items.iter().any(has_kty),
            _ => false,
        }
    }
    let text = text.trim_start_matches('\u{feff}').trim();
    serde_json::from_str::<Value>(text).is_ok_and(|value| has_kty(&value))
}

/// A DER public key anywhere in `bytes`: each SEQUENCE that could hold
/// one (44 bytes or more: an Ed25519 `SubjectPublicKeyInfo` is the smallest)
/// is tried as RSA (PKCS#1 or SPKI), EC and Ed25519 (SPKI); the whole of
/// `bytes` is also tried as an uncompressed EC point.
fn der_public_key(bytes: &[u8]) -> Option<&'static str> {
    type Parser = (&'static str, &'static dyn signature::VerificationAlgorithm);
    const PARSERS: [Parser; 5] = [
        ("an RSA public key", &signature::RSA_PKCS1_2048_8192_SHA256),
        ("an EC public key", &signature::ECDSA_P256_SHA256_FIXED),
        ("an EC public key", &signature::ECDSA_P384_SHA384_FIXED),
        ("an EC public key", &signature::ECDSA_P521_SHA512_FIXED),
        ("an Ed25519 public key", &signature::ED25519),
    ];
    fn parses(candidate: &[u8], parsers: &[Parser]) -> Option<&'static str> {
        parsers
            .iter()
            .find(|(_, alg)| ParsedPublicKey::new(*alg, candidate).is_ok())
            .map(|(found, _)| *found)
    }
    let uncompressed_point = matches!(bytes.len(), 65 | 97 | 133) && bytes[0] == 4;
    if uncompressed_point && let Some(found) = parses(bytes, &PARSERS[1..4]) {
        return Some(found);
    }
    (0..bytes.len())
        .filter(|at| bytes[*at] == 0x30)
        .filter_map(|at| {
            let rest = &bytes[at..];
            let (_, after) = der_element(rest, 0x30)?;
            let element = &rest[..rest.len() - after.len()];
            (element.len() >= 44).then_some(element)
        })
        .find_map(|element| parses(element, &PARSERS))
}

/// `(n, e)` from a PKCS#1 `RSAPublicKey`: `SEQUENCE { INTEGER n, INTEGER e }`.
fn rsa_components_from_pkcs1(der: &[u8]) -> Option<(Vec<u8>, Vec<u8>)> {
    let (sequence, _) = der_element(der, 0x30)?;
    let (n, rest) = der_element(sequence, 0x02)?;
    let (e, _) = der_element(rest, 0x02)?;
    Some((n.to_vec(), e.to_vec()))
}

/// Splits one DER element with `tag` off the front of `input`: (content, rest).
fn der_element(input: &[u8], tag: u8) -> Option<(&[u8], &[u8])> {
    let (&first, input) = input.split_first()?;
    if first != tag {
        return None;
    }
    let (&len_byte, input) = input.split_first()?;
    let (len, input) = if len_byte < 0x80 {
        (usize::from(len_byte), input)
    } else {
        let count = usize::from(len_byte & 0x7f);
        if count == 0 || count > 4 || input.len() < count {
            return None;
        }
        let len = input[..count]
            .iter()
            .fold(0usize, |acc, b| (acc << 8) | usize::from(*b));
        (len, &input[count..])
    };
    (input.len() >= len).then(|| input.split_at(len))
}

fn pem_bytes(key: jsonwebtoken::errors::Result<DecodingKey>) -> Option<Vec<u8>> {
    key.ok()?.try_get_as_bytes().ok().map(<[u8]>::to_vec)
}

fn b64_member(jwk: &Map<String, Value>, name: &str) -> Option<Vec<u8>> {
    URL_SAFE_NO_PAD.decode(jwk.get(name)?.as_str()?).ok()
}

fn strip_leading_zeros(bytes: Vec<u8>) -> Vec<u8> {
    let zeros = bytes.iter().take_while(|b| **b == 0).count();
    if zeros == 0 {
        bytes
    } else {
        bytes[zeros..].to_vec()
    }
}

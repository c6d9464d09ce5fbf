//! A verification key fixed in the configuration (OpenGPTs `jwt_local`):
//! a PEM public key or an HMAC secret, checked once when the configuration
//! is built, with errors that name what the key is but never its bytes.

use aws_lc_rs::signature::{self, ParsedPublicKey};
use aws_lc_rs::{hmac, rsa};
use base64::Engine;
use der::{Decode, Tag, Tagged, asn1::AnyRef};
use jsonwebtoken::{Algorithm, DecodingKey};
use serde_json::Value;

use super::{Check, KeyKind, VerifyingKey, public_key, rsa_bits, rsa_key};

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
            let public = rsa::PublicKey::from_der(&pkcs1).map_err(|_| not_a_key())?;
            let rsa::PublicKeyComponents { n, e } = (&public).into();
            let bits = rsa_bits(&n);
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

/// A DER public key anywhere in `bytes`: each SEQUENCE (its extent read
/// with the `der` crate) that could hold one (44 bytes or more: an Ed25519 `SubjectPublicKeyInfo` is the smallest)
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
        .filter_map(|at| {
            let rest = &bytes[at..];
            let (element, after) = AnyRef::from_der_partial(rest).ok()?;
            let element =
                (element.tag() == Tag::Sequence).then_some(&rest[..rest.len() - after.len()])?;
            (element.len() >= 44).then_some(element)
        })
        .find_map(|element| parses(element, &PARSERS))
}

fn pem_bytes(key: jsonwebtoken::errors::Result<DecodingKey>) -> Option<Vec<u8>> {
    key.ok()?.try_get_as_bytes().ok().map(<[u8]>::to_vec)
}

fn hmac_params(alg: Algorithm) -> Option<(hmac::Algorithm, usize)> {
    match alg {
        Algorithm::HS256 => Some((hmac::HMAC_SHA256, 32)),
        Algorithm::HS384 => Some((hmac::HMAC_SHA384, 48)),
        Algorithm::HS512 => Some((hmac::HMAC_SHA512, 64)),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A PKCS#1 `RSAPublicKey` with a `bits`-bit modulus (a multiple of 8)
    /// and exponent 65537, in PEM.
    fn rsa_pem(bits: usize) -> String {
        let mut n = vec![0xC5u8; bits / 8];
        n[bits / 8 - 1] |= 1;
        let n = [&[0u8][..], &n].concat();
        let integer = |content: &[u8]| [&[0x02][..], &der_length(content.len()), content].concat();
        let body = [integer(&n), integer(&[1, 0, 1])].concat();
        let der = [&[0x30][..], &der_length(body.len()), &body].concat();
        let text = base64::engine::general_purpose::STANDARD.encode(der);
        format!("-----BEGIN RSA PUBLIC KEY-----\n{text}\n-----END RSA PUBLIC KEY-----\n")
    }

    fn der_length(len: usize) -> Vec<u8> {
        match len {
            0..0x80 => vec![len as u8],
            0x80..0x100 => vec![0x81, len as u8],
            _ => vec![0x82, (len >> 8) as u8, len as u8],
        }
    }

    #[test]
    fn a_configured_rsa_key_outside_2048_to_8192_bits_is_refused_naming_its_size() {
        let error = from_config(Algorithm::RS256, rsa_pem(1024).as_bytes())
            .unwrap_err()
            .reason;
        assert!(error.contains("found one of 1024 bits"), "{error}");
        let key = from_config(Algorithm::PS256, rsa_pem(2048).as_bytes()).unwrap();
        assert!(key.fits(Algorithm::PS256) && !key.fits(Algorithm::RS256));
    }

    #[test]
    fn a_damaged_rsa_key_is_not_a_key() {
        let pem = rsa_pem(2048);
        let damaged = pem.replacen("MIIB", "MIIC", 1);
        let error = from_config(Algorithm::RS256, damaged.as_bytes())
            .unwrap_err()
            .reason;
        assert!(error.contains("needs an RSA public key in PEM"), "{error}");
    }

    #[test]
    fn a_public_key_is_found_in_a_secret_at_any_offset_and_only_whole() {
        let pem = rsa_pem(2048);
        let body: String = pem.lines().filter(|l| !l.starts_with("-----")).collect();
        let der = base64::engine::general_purpose::STANDARD
            .decode(body)
            .unwrap();
        let hidden = [&[0x30, 0x30, 0x01][..], &der, &[0x30; 3]].concat();
        assert_eq!(der_public_key(&hidden), Some("an RSA public key"));
        assert_eq!(der_public_key(&der[..der.len() - 1]), None);
        assert_eq!(der_public_key(&[0x30; 300]), None);
    }
}

//! Reading a JWKS or an OpenID Connect discovery document into keys.
//!
//! A JWKS that parses is an answer, whatever it holds: its usable keys
//! (possibly none) replace the cached ones. Only a body that is not a JWKS
//! at all is refused.

use std::fmt;
use std::sync::Arc;

use jsonwebtoken::{Algorithm, AlgorithmFamily};
use reqwest::Url;
use serde::Deserialize;
use serde_json::Value;

use super::TARGET;
use crate::json::{self, Member, Object};
use crate::keys::{Jwk, VerifyingKey, from_jwk};
use crate::url_policy::checked_url;

/// Why a document is not a usable JWKS or discovery document.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum DocumentError {
    NotAJwks,
    NotADiscoveryDocument,
    IssuerMismatch,
    BadJwksUri(String),
    NoUsableAlgorithm,
}

impl fmt::Display for DocumentError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::NotAJwks => f.write_str("the body is not a JSON Web Key Set"),
            Self::NotADiscoveryDocument => {
                f.write_str("the body is not an OpenID Connect discovery document")
            }
            Self::IssuerMismatch => {
                f.write_str("the discovery document names another issuer than the configured one")
            }
            Self::BadJwksUri(reason) => write!(f, "the discovery document's jwks_uri {reason}"),
            Self::NoUsableAlgorithm => f.write_str(
                "the discovery document lists no asymmetric signing algorithm this crate verifies",
            ),
        }
    }
}

/// A JSON Web Key Set (RFC 7517 §5).
#[derive(Deserialize)]
struct JwkSet {
    /// Each a JSON object (RFC 7517 §4): anything else makes the document
    /// malformed, not merely a key unusable.
    keys: Vec<Object<Jwk>>,
}

/// The members of an OpenID Connect discovery document (OpenID Connect
/// Discovery §3) this crate reads.
#[derive(Default, Deserialize)]
#[serde(default)]
struct Discovery {
    issuer: Member<String>,
    jwks_uri: Member<String>,
    id_token_signing_alg_values_supported: Member<Vec<Value>>,
}

/// Parses a JWKS document into the keys usable with `algorithms`; returns
/// them (possibly none) with the number of keys skipped.
pub(crate) fn parse_jwks(
    body: &[u8],
    algorithms: &[Algorithm],
) -> Result<(Vec<Arc<VerifyingKey>>, usize), DocumentError> {
    let JwkSet { keys: entries } = json::parse(body).ok_or(DocumentError::NotAJwks)?;
    let mut keys: Vec<VerifyingKey> = Vec::with_capacity(entries.len());
    let mut skipped = 0;
    let mut ambiguous: Vec<String> = Vec::new();
    for Object(jwk) in entries {
        let Some(key) = from_jwk(jwk, algorithms) else {
            skipped += 1;
            continue;
        };
        if let Some(kid) = key.kid()
            && let Some(existing) = keys.iter().find(|k| k.kid() == Some(kid))
        {
            if !existing.same_material(&key) && !ambiguous.iter().any(|a| a == kid) {
                ambiguous.push(kid.to_owned());
            }
            skipped += 1;
            continue;
        }
        keys.push(key);
    }
    if !ambiguous.is_empty() {
        tracing::warn!(
            target: TARGET,
            count = ambiguous.len(),
            "JWKS names different keys with the same kid; those keys are not used"
        );
        keys.retain(|key| {
            let drop = key
                .kid()
                .is_some_and(|kid| ambiguous.iter().any(|a| a == kid));
            skipped += usize::from(drop);
            !drop
        });
    }
    if keys.is_empty() {
        tracing::warn!(
            target: TARGET,
            skipped,
            "JWKS holds no usable signing key; tokens are refused until it does"
        );
    }
    Ok((keys.into_iter().map(Arc::new).collect(), skipped))
}

/// Reads a discovery document: its `issuer` must be `issuer` exactly
/// (OpenID Connect Discovery §4.3); returns the `jwks_uri` and the
/// algorithms to accept (configured, or the asymmetric ones it lists).
pub(crate) fn parse_discovery(
    body: &[u8],
    issuer: &str,
    configured: Option<&[Algorithm]>,
) -> Result<(Url, Vec<Algorithm>), DocumentError> {
    let document: Discovery = json::parse(body).ok_or(DocumentError::NotADiscoveryDocument)?;
    match document.issuer {
        Member::Present(named) if named == issuer => {}
        Member::Present(_) => return Err(DocumentError::IssuerMismatch),
        _ => return Err(DocumentError::NotADiscoveryDocument),
    }
    let Member::Present(jwks_uri) = document.jwks_uri else {
        return Err(DocumentError::NotADiscoveryDocument);
    };
    let jwks_url = checked_url(&jwks_uri).map_err(|e| DocumentError::BadJwksUri(e.reason))?;
    let algorithms = match configured {
        Some(configured) => configured.to_vec(),
        None => match document.id_token_signing_alg_values_supported {
            Member::Absent => vec![Algorithm::RS256],
            Member::Present(names) => {
                let listed: Vec<Algorithm> = names
                    .iter()
                    .filter_map(Value::as_str)
                    .filter_map(|name| name.parse::<Algorithm>().ok())
                    .filter(|alg| alg.family() != AlgorithmFamily::Hmac)
                    .collect();
                if listed.is_empty() {
                    return Err(DocumentError::NoUsableAlgorithm);
                }
                listed
            }
            Member::Invalid => return Err(DocumentError::NotADiscoveryDocument),
        },
    };
    Ok((jwks_url, algorithms))
}

#[cfg(test)]
mod tests {
    use super::*;
    use base64::Engine;
    use base64::engine::general_purpose::URL_SAFE_NO_PAD;
    use serde_json::json;

    fn rsa_jwk(bits: usize) -> Value {
        let mut n = vec![0xC5u8; bits / 8];
        n[bits / 8 - 1] |= 1;
        json!({"kty": "RSA", "kid": "k1", "n": URL_SAFE_NO_PAD.encode(&n), "e": "AQAB"})
    }

    fn parse(keys: Vec<Value>) -> Result<(Vec<Arc<VerifyingKey>>, usize), DocumentError> {
        let doc = serde_json::to_vec(&json!({ "keys": keys })).unwrap();
        parse_jwks(&doc, &[Algorithm::RS256])
    }

    #[test]
    fn rsa_keys_between_2048_and_8192_bits_are_kept() {
        for bits in [2048, 4096, 8192] {
            assert_eq!(parse(vec![rsa_jwk(bits)]).unwrap().0.len(), 1, "{bits}");
        }
        for bits in [1024, 2040, 8200] {
            assert!(parse(vec![rsa_jwk(bits)]).unwrap().0.is_empty(), "{bits}");
        }
    }

    #[test]
    fn keys_for_encryption_with_private_members_or_other_algorithms_are_skipped() {
        let mut enc = rsa_jwk(2048);
        enc["use"] = json!("enc");
        let mut private = rsa_jwk(2048);
        private["d"] = json!("AQAB");
        let mut es = rsa_jwk(2048);
        es["alg"] = json!("RS512");
        let mut good = rsa_jwk(2048);
        good["kid"] = json!("good");
        good["alg"] = json!("RS256");
        let (keys, skipped) = parse(vec![enc, private, es, good]).unwrap();
        assert_eq!(keys.len(), 1);
        assert_eq!(keys[0].kid(), Some("good"));
        assert_eq!(skipped, 3);
    }

    #[test]
    fn different_keys_sharing_a_kid_are_dropped_and_identical_ones_merged() {
        let a = rsa_jwk(2048);
        let mut b = rsa_jwk(4096);
        b["kid"] = json!("k1");
        assert!(parse(vec![a.clone(), b]).unwrap().0.is_empty());
        assert_eq!(parse(vec![a.clone(), a]).unwrap().0.len(), 1);
    }

    #[test]
    fn a_key_set_without_usable_keys_is_an_answer() {
        assert!(
            parse_jwks(b"{\"keys\":[]}", &[Algorithm::RS256])
                .unwrap()
                .0
                .is_empty()
        );
        let mut enc = rsa_jwk(2048);
        enc["use"] = json!("enc");
        let (keys, skipped) = parse(vec![enc]).unwrap();
        assert!(keys.is_empty());
        assert_eq!(skipped, 1);
        assert_eq!(
            parse_jwks(b"{\"keys\":[\"k1\"]}", &[Algorithm::RS256]).unwrap_err(),
            DocumentError::NotAJwks
        );
    }

    #[test]
    fn an_rsa_key_without_alg_verifies_exactly_one_algorithm() {
        let doc = serde_json::to_vec(&json!({ "keys": [rsa_jwk(2048)] })).unwrap();
        let rsa = [Algorithm::RS512, Algorithm::RS256, Algorithm::PS256];
        let (keys, _) = parse_jwks(&doc, &rsa).unwrap();
        let fitting: Vec<_> = rsa.into_iter().filter(|alg| keys[0].fits(*alg)).collect();
        assert_eq!(fitting, [Algorithm::RS256]);
        let (keys, _) = parse_jwks(&doc, &[Algorithm::PS384, Algorithm::ES256]).unwrap();
        assert!(keys[0].fits(Algorithm::PS384));
        let (keys, skipped) = parse_jwks(&doc, &[Algorithm::RS512, Algorithm::PS256]).unwrap();
        assert!(keys.is_empty());
        assert_eq!(skipped, 1);
    }

    #[test]
    fn documents_that_are_not_key_sets_are_refused() {
        for body in [
            &b"[]"[..],
            b"{\"keys\":{}}",
            b"not json",
            b"{\"keys\":[],\"keys\":[]}",
        ] {
            assert!(matches!(
                parse_jwks(body, &[Algorithm::RS256]),
                Err(DocumentError::NotAJwks)
            ));
        }
    }

    #[test]
    fn discovery_document_must_name_the_configured_issuer_exactly() {
        let doc = |issuer: &str| {
            json!({"issuer": issuer, "jwks_uri": "https://id.example.com/jwks"}).to_string()
        };
        let ok = parse_discovery(
            doc("https://id.example.com").as_bytes(),
            "https://id.example.com",
            None,
        );
        let (url, algorithms) = ok.unwrap();
        assert_eq!(url.as_str(), "https://id.example.com/jwks");
        assert_eq!(algorithms, vec![Algorithm::RS256]);
        for other in [
            "https://id.example.com/",
            "https://evil.example.com",
            "HTTPS://id.example.com",
        ] {
            assert!(matches!(
                parse_discovery(doc(other).as_bytes(), "https://id.example.com", None),
                Err(DocumentError::IssuerMismatch)
            ));
        }
    }

    #[test]
    fn discovered_algorithms_keep_only_asymmetric_ones() {
        let doc = json!({
            "issuer": "https://id.example.com",
            "jwks_uri": "https://id.example.com/jwks",
            "id_token_signing_alg_values_supported": ["HS256", "none", "ES256", "RS256"]
        })
        .to_string();
        let (_, algorithms) =
            parse_discovery(doc.as_bytes(), "https://id.example.com", None).unwrap();
        assert_eq!(algorithms, vec![Algorithm::ES256, Algorithm::RS256]);
        let only_hmac = json!({
            "issuer": "https://id.example.com",
            "jwks_uri": "https://id.example.com/jwks",
            "id_token_signing_alg_values_supported": ["HS256", "none"]
        })
        .to_string();
        assert!(matches!(
            parse_discovery(only_hmac.as_bytes(), "https://id.example.com", None),
            Err(DocumentError::NoUsableAlgorithm)
        ));
    }

    #[test]
    fn discovered_jwks_uri_must_be_https_or_loopback() {
        let doc =
            json!({"issuer": "https://id.example.com", "jwks_uri": "http://evil.example.com/jwks"})
                .to_string();
        assert!(matches!(
            parse_discovery(doc.as_bytes(), "https://id.example.com", None),
            Err(DocumentError::BadJwksUri(_))
        ));
    }
}

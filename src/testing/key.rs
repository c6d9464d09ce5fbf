//! The mock issuer's RSA signing keys and the signatures they make.

use std::sync::Arc;

use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::rsa::KeySize;
use aws_lc_rs::signature::{self, KeyPair, RsaKeyPair};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::Algorithm;
use serde_json::{Value, json};

/// One RSA-2048 signing key of the mock issuer.
#[derive(Clone)]
pub(super) struct MockKey {
    pub(super) kid: String,
    pub(super) pair: Arc<RsaKeyPair>,
    pub(super) jwk: Value,
}

impl MockKey {
    pub(super) fn generate(kid: String) -> Self {
        let pair = RsaKeyPair::generate(KeySize::Rsa2048).expect("RSA key generation");
        let public = pair.public_key();
        let jwk = json!({
            "kty": "RSA",
            "use": "sig",
            "alg": "RS256",
            "kid": kid,
            "n": URL_SAFE_NO_PAD.encode(public.modulus().big_endian_without_leading_zero()),
            "e": URL_SAFE_NO_PAD.encode(public.exponent().big_endian_without_leading_zero()),
        });
        Self {
            kid,
            pair: Arc::new(pair),
            jwk,
        }
    }
}

pub(super) fn rsa_sign(pair: &RsaKeyPair, alg: Algorithm, message: &[u8]) -> Vec<u8> {
    let padding: &'static dyn signature::RsaEncoding = match alg {
        Algorithm::RS384 => &signature::RSA_PKCS1_SHA384,
        Algorithm::RS512 => &signature::RSA_PKCS1_SHA512,
        Algorithm::PS256 => &signature::RSA_PSS_SHA256,
        Algorithm::PS384 => &signature::RSA_PSS_SHA384,
        Algorithm::PS512 => &signature::RSA_PSS_SHA512,
        _ => &signature::RSA_PKCS1_SHA256,
    };
    let mut signature = vec![0; pair.public_modulus_len()];
    pair.sign(padding, &SystemRandom::new(), message, &mut signature)
        .expect("RSA signing");
    signature
}

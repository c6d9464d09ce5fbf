//! The token attacks a soak mixes into its load, each of which a verifier
//! must refuse (`400`, `401` or `431`; never `200`). Shared by the crate's
//! soak (`benches/soak`) and the gateway's (`gateway/bench/soak`).

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use meingpt_auth::testing::MockIssuer;
use serde_json::json;

/// One attack: what it tries, and the token that tries it.
pub struct Attack {
    pub name: &'static str,
    pub token: String,
}

/// The catalogue, forged from `issuer`'s current key.
pub fn attacks(issuer: &MockIssuer) -> Vec<Attack> {
    let valid = issuer.token().sign();
    let (header, rest) = valid.split_once('.').unwrap();
    let (_claims, signature) = rest.split_once('.').unwrap();
    let admin_claims = URL_SAFE_NO_PAD.encode(
        json!({"iss": issuer.issuer(), "aud": issuer.organization(), "sub": "x", "exp": 4_000_000_000u64, "role": "admin"})
            .to_string(),
    );
    let b64 = |v: serde_json::Value| URL_SAFE_NO_PAD.encode(v.to_string());
    let attack = |name, token| Attack { name, token };
    vec![
        attack(
            "alg none",
            format!("{}.{}.", b64(json!({"alg": "none"})), admin_claims),
        ),
        attack(
            "HS256 signed with the public key",
            format!(
                "{}.{}.{}",
                b64(json!({"alg": "HS256", "kid": "key-1"})),
                admin_claims,
                signature
            ),
        ),
        attack(
            "tampered payload under a real signature",
            format!("{header}.{admin_claims}.{signature}"),
        ),
        attack("expired", issuer.token().expires_at(1_000_000).sign()),
        attack(
            "another organization (audience)",
            issuer.token().audience("someone-else").sign(),
        ),
        attack(
            "jku pointing elsewhere",
            issuer
                .token()
                .header("jku", "http://127.0.0.1:1/jwks")
                .kid("attacker")
                .sign(),
        ),
        attack(
            "crit header",
            issuer.token().header("crit", json!(["exp"])).sign(),
        ),
        attack(
            "duplicate member names",
            issuer.sign_raw(
                &json!({"alg": "RS256", "kid": issuer.current_kid()}).to_string(),
                &format!(
                    "{{\"iss\":\"{}\",\"aud\":\"{}\",\"sub\":\"a\",\"sub\":\"b\",\"exp\":4000000000}}",
                    issuer.issuer(),
                    issuer.organization()
                ),
            ),
        ),
        attack("garbage", "not.a.token".to_owned()),
        attack("oversize (17 KiB)", "a".repeat(17 * 1024)),
    ]
}

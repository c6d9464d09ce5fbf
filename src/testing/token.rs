//! [`TokenBuilder`]: tokens with meinGPT's claims, signed by a mock
//! issuer's key.

use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::Algorithm;
use serde_json::{Map, Value, json};

use super::key::{MockKey, rsa_sign};
use crate::clock::{Clock, SystemClock};

/// Builds and signs a token with the issuer's current key. Starts from
/// meinGPT's claims for a member (`sub` `user-1`, one hour lifetime).
#[derive(Clone)]
#[must_use]
pub struct TokenBuilder {
    pub(super) key: MockKey,
    pub(super) header: Map<String, Value>,
    pub(super) claims: Map<String, Value>,
}

impl std::fmt::Debug for TokenBuilder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenBuilder")
            .field("kid", &self.key.kid)
            .finish_non_exhaustive()
    }
}

impl TokenBuilder {
    /// Sets any claim.
    pub fn claim(mut self, name: &str, value: impl Into<Value>) -> Self {
        self.claims.insert(name.to_owned(), value.into());
        self
    }

    /// Removes a claim.
    pub fn without(mut self, name: &str) -> Self {
        self.claims.remove(name);
        self
    }

    /// Sets any header parameter.
    pub fn header(mut self, name: &str, value: impl Into<Value>) -> Self {
        self.header.insert(name.to_owned(), value.into());
        self
    }

    /// Removes a header parameter.
    pub fn without_header(mut self, name: &str) -> Self {
        self.header.remove(name);
        self
    }

    /// The subject.
    #[allow(clippy::should_implement_trait)]
    pub fn sub(self, sub: &str) -> Self {
        self.claim("sub", sub)
    }

    /// The e-mail address.
    pub fn email(self, email: &str) -> Self {
        self.claim("email", email)
    }

    /// The user's name.
    pub fn username(self, username: &str) -> Self {
        self.claim("username", username)
    }

    /// The role (`"admin"`, `"member"`, …).
    pub fn role(self, role: &str) -> Self {
        self.claim("role", role)
    }

    /// Adds a team.
    pub fn team(mut self, id: &str, name: &str) -> Self {
        let teams = self
            .claims
            .entry("teams")
            .or_insert_with(|| Value::Array(Vec::new()));
        if !teams.is_array() {
            *teams = Value::Array(Vec::new());
        }
        if let Value::Array(teams) = teams {
            teams.push(json!({ "id": id, "name": name }));
        }
        self
    }

    /// The audience (organization id), as a string or an array.
    pub fn audience(self, aud: impl Into<Value>) -> Self {
        self.claim("aud", aud)
    }

    /// The issuer.
    pub fn issuer(self, iss: &str) -> Self {
        self.claim("iss", iss)
    }

    /// `iat` now and `exp` after `lifetime`.
    pub fn expires_in(self, lifetime: Duration) -> Self {
        let now = SystemClock.now().as_secs() as i64;
        self.claim("iat", now)
            .claim("exp", now + lifetime.as_secs() as i64)
    }

    /// `exp` as seconds since the Unix epoch.
    pub fn expires_at(self, exp: i64) -> Self {
        self.claim("exp", exp)
    }

    /// `iat` as seconds since the Unix epoch.
    pub fn issued_at(self, iat: i64) -> Self {
        self.claim("iat", iat)
    }

    /// `nbf` as seconds since the Unix epoch.
    pub fn not_before(self, nbf: i64) -> Self {
        self.claim("nbf", nbf)
    }

    /// The `kid` header.
    pub fn kid(self, kid: &str) -> Self {
        self.header("kid", kid)
    }

    /// Signs with the issuer's current key (RS256).
    pub fn sign(self) -> String {
        self.sign_with(Algorithm::RS256)
    }

    /// Signs with the issuer's current RSA key using `alg` (RS*/PS*), and
    /// says so in the header.
    pub fn sign_with(mut self, alg: Algorithm) -> String {
        self.header.insert("alg".into(), json!(algorithm_name(alg)));
        let message = format!(
            "{}.{}",
            URL_SAFE_NO_PAD.encode(Value::Object(self.header).to_string()),
            URL_SAFE_NO_PAD.encode(Value::Object(self.claims).to_string())
        );
        let signature = rsa_sign(&self.key.pair, alg, message.as_bytes());
        format!("{message}.{}", URL_SAFE_NO_PAD.encode(signature))
    }

    /// The header and claims, unsigned, for tokens signed some other way.
    pub fn into_parts(self) -> (Map<String, Value>, Map<String, Value>) {
        (self.header, self.claims)
    }
}

/// The registered JWA name of `alg` (`"RS256"`, …).
fn algorithm_name(alg: Algorithm) -> &'static str {
    match alg {
        Algorithm::HS256 => "HS256",
        Algorithm::HS384 => "HS384",
        Algorithm::HS512 => "HS512",
        Algorithm::ES256 => "ES256",
        Algorithm::ES384 => "ES384",
        Algorithm::RS256 => "RS256",
        Algorithm::RS384 => "RS384",
        Algorithm::RS512 => "RS512",
        Algorithm::PS256 => "PS256",
        Algorithm::PS384 => "PS384",
        Algorithm::PS512 => "PS512",
        Algorithm::EdDSA => "EdDSA",
        _ => "unknown",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn algorithm_names_round_trip_through_jsonwebtoken() {
        for name in ["RS256", "PS512", "ES384", "EdDSA", "HS256"] {
            let alg: Algorithm = name.parse().unwrap();
            assert_eq!(algorithm_name(alg), name);
        }
    }
}

//! The verified user: [`MeinGptUser`], its [`Role`] and its [`Team`]s.

use std::fmt;
use std::ops::Range;
use std::sync::{Arc, OnceLock};

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;

use serde::ser::SerializeStruct;
use serde::{Deserialize, Serialize, Serializer};
use serde_json::{Map, Value};

mod parse;

pub(crate) use parse::{ClaimRules, user_from_claims};

/// A user's role in the meinGPT organization (or a role another platform
/// sends).
///
/// meinGPT sends `"admin"` or `"member"`; any other value (such as
/// `"viewer"`) is kept as [`Role::Other`]: the user still authenticates but
/// passes no guard that asks for admin or member. Matching is exact and
/// case-sensitive unless the configuration makes it case-insensitive
/// ([`MeinGptAuthBuilder::roles_case_insensitive`](crate::MeinGptAuthBuilder::roles_case_insensitive)).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Role {
    /// `"admin"`: may manage the organization.
    Admin,
    /// `"member"`: an ordinary user.
    Member,
    /// Any other role name, kept verbatim.
    Other(String),
}

impl Role {
    /// The role's name as it appears in the token.
    pub fn as_str(&self) -> &str {
        match self {
            Self::Admin => "admin",
            Self::Member => "member",
            Self::Other(name) => name,
        }
    }
}

impl From<&str> for Role {
    fn from(name: &str) -> Self {
        match name {
            "admin" => Self::Admin,
            "member" => Self::Member,
            other => Self::Other(other.to_owned()),
        }
    }
}

impl From<String> for Role {
    fn from(name: String) -> Self {
        match name.as_str() {
            "admin" => Self::Admin,
            "member" => Self::Member,
            _ => Self::Other(name),
        }
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl Serialize for Role {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for Role {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        String::deserialize(deserializer).map(Role::from)
    }
}

/// A team the user belongs to, as meinGPT's `teams` claim lists it.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Team {
    /// The team's stable id.
    pub id: String,
    /// The team's display name.
    pub name: String,
}

/// The user a verified token speaks for.
///
/// Inserted into request extensions by the auth layer and extracted in axum
/// handlers by value (or as `Option<MeinGptUser>` on routes that also serve
/// anonymous users). Cloning is cheap: the claims are shared.
///
/// Each claim is held once: the typed accessors read fields parsed when the
/// token was verified, and [`claims`](Self::claims) reads the token's
/// payload as sent, parsed into a map on first use (per clone). The shared
/// data keeps the verified token's bytes, the very allocation the
/// verified-token cache holds for it, so a remembered token's user costs no
/// copy; no method gives out more of it than the
/// [`payload_segment`](Self::payload_segment).
///
/// `Debug` prints the subject, organization, role and teams but never the
/// e-mail address or the user's name.
pub struct MeinGptUser {
    inner: Arc<UserClaims>,
    /// The payload as a JSON map, parsed on first use of `claims()`.
    claims: OnceLock<Map<String, Value>>,
}

impl Clone for MeinGptUser {
    fn clone(&self) -> Self {
        Self {
            inner: self.inner.clone(),
            claims: OnceLock::new(),
        }
    }
}

struct UserClaims {
    sub: String,
    roles_case_insensitive: bool,
    meingpt: bool,
    organization_id: String,
    issuer: String,
    email: Option<String>,
    username: Option<String>,
    organization_name: Option<String>,
    roles: Vec<Role>,
    teams: Vec<Team>,
    jti: Option<String>,
    /// The `scope` and `scp` items, in that order.
    scopes: Vec<Box<str>>,
    iat: Option<i64>,
    exp: i64,
    /// The verified token and where its payload segment lies in it.
    signed: SignedPayload,
}

/// The payload segment of a verified token, within the token's bytes: the
/// token is shared (with the verified-token cache), the segment is all
/// that is read of it.
#[derive(Debug, Clone)]
pub(crate) struct SignedPayload {
    token: Arc<str>,
    segment: Range<usize>,
}

impl SignedPayload {
    /// The payload segment at `segment` of `token`, a compact JWS whose
    /// signature over it has verified.
    pub(crate) fn new(token: Arc<str>, segment: Range<usize>) -> Self {
        debug_assert!(token.get(segment.clone()).is_some());
        Self { token, segment }
    }

    /// The whole token, for the verified-token cache that compares it.
    pub(crate) fn token(&self) -> &Arc<str> {
        &self.token
    }

    fn segment(&self) -> &str {
        self.token.get(self.segment.clone()).unwrap_or_default()
    }

    /// The payload's JSON, decoded from the segment (it verified, so it
    /// decodes).
    fn json(&self) -> Vec<u8> {
        URL_SAFE_NO_PAD.decode(self.segment()).unwrap_or_default()
    }
}

impl MeinGptUser {
    /// The subject (`sub`): meinGPT's stable user id.
    pub fn sub(&self) -> &str {
        &self.inner.sub
    }

    /// The organization the token was issued for (the matched `aud`).
    pub fn organization_id(&self) -> &str {
        &self.inner.organization_id
    }

    /// The issuer (`iss`) that signed the token.
    pub fn issuer(&self) -> &str {
        &self.inner.issuer
    }

    /// Whether a meinGPT configuration ([`MeinGptAuth::builder`](crate::MeinGptAuth::builder),
    /// `MEINGPT_ORG_ID`) verified the token, rather than an OpenID Connect
    /// or static-key one: the user is a member of a configured organization
    /// ([`organization_id`](Self::organization_id)). meinGPT's tokens carry
    /// roles and teams, never OAuth scopes.
    pub fn is_meingpt(&self) -> bool {
        self.inner.meingpt
    }

    /// The user's e-mail address, from the `email` claim only; `None` when
    /// the token says `"email_verified": false`.
    ///
    /// Only when the configuration asks for it
    /// ([`MeinGptAuthBuilder::email_fallback`](crate::MeinGptAuthBuilder::email_fallback))
    /// does a token without `email` give its `upn` or `preferred_username`
    /// instead: names many identity providers let users choose, so never
    /// authorize by their domain.
    pub fn email(&self) -> Option<&str> {
        self.inner.email.as_deref()
    }

    /// The user's name (`username`), if the token carries one.
    pub fn username(&self) -> Option<&str> {
        self.inner.username.as_deref()
    }

    /// The organization's display name (`organizationName`).
    pub fn organization_name(&self) -> Option<&str> {
        self.inner.organization_name.as_deref()
    }

    /// The user's (first) role; `None` when the token names none.
    pub fn role(&self) -> Option<&Role> {
        self.inner.roles.first()
    }

    /// Every role the token names (meinGPT sends exactly one).
    pub fn roles(&self) -> &[Role] {
        &self.inner.roles
    }

    /// Whether the user has `role`: compared code point for code point (no
    /// trimming, no Unicode folding), or ignoring ASCII case when so
    /// configured.
    pub fn has_role(&self, role: &Role) -> bool {
        if self.inner.roles_case_insensitive {
            let wanted = role.as_str();
            self.inner
                .roles
                .iter()
                .any(|own| own.as_str().eq_ignore_ascii_case(wanted))
        } else {
            self.inner.roles.contains(role)
        }
    }

    /// The teams the user belongs to (`teams`); empty when absent.
    pub fn teams(&self) -> &[Team] {
        &self.inner.teams
    }

    /// Whether the user is in the team with this id.
    pub fn in_team_id(&self, id: &str) -> bool {
        self.inner.teams.iter().any(|team| team.id == id)
    }

    /// Whether the user is in a team with this name (exact match). Team
    /// names are neither unique nor stable; prefer
    /// [`in_team_id`](Self::in_team_id) for decisions that matter.
    pub fn in_team_named(&self, name: &str) -> bool {
        self.inner.teams.iter().any(|team| team.name == name)
    }

    /// The token's unique id (`jti`).
    pub fn jti(&self) -> Option<&str> {
        self.inner.jti.as_deref()
    }

    /// When the token was issued (`iat`, seconds since the Unix epoch). A
    /// fractional `iat` is reported rounded down to whole seconds; the exact
    /// value is in [`claim("iat")`](Self::claim).
    pub fn issued_at(&self) -> Option<i64> {
        self.inner.iat
    }

    /// When the token expires (`exp`, seconds since the Unix epoch). A
    /// fractional `exp` is reported rounded down to whole seconds (never
    /// later than the token really expires); verification compares the
    /// exact value, which is in [`claim("exp")`](Self::claim).
    pub fn expires_at(&self) -> i64 {
        self.inner.exp
    }

    /// The OAuth scopes the token grants: the space-separated `scope` claim
    /// (RFC 8693, RFC 9068; Keycloak, Auth0) and Entra ID's `scp`, each a
    /// string of scopes separated by spaces or an array of scopes. Empty
    /// when the token has neither.
    pub fn scopes(&self) -> impl Iterator<Item = &str> {
        self.inner.scopes.iter().map(|scope| &**scope)
    }

    /// Whether the token grants `scope` (exact, case-sensitive match).
    pub fn has_scope(&self, scope: &str) -> bool {
        self.scopes().any(|own| own == scope)
    }

    /// All claims of the token as sent, for anything custom.
    pub fn claims(&self) -> &Map<String, Value> {
        self.claims.get_or_init(|| {
            crate::json::parse_object(&self.inner.signed.json()).unwrap_or_default()
        })
    }

    /// One claim by name, for anything custom.
    pub fn claim(&self, name: &str) -> Option<&Value> {
        self.claims().get(name)
    }

    /// The claims as your own type (any `serde::Deserialize`).
    pub fn claims_as<T: serde::de::DeserializeOwned>(&self) -> Result<T, serde_json::Error> {
        serde_json::from_slice(&self.inner.signed.json())
    }

    /// The token's payload segment exactly as it was signed: the base64url
    /// (no padding) of the claims' JSON, the middle of the three
    /// `.`-separated parts. A gateway forwards it (`X-meinGPT-Claims`) so
    /// that an upstream reads every claim without parsing the request
    /// again.
    ///
    /// It is the payload only, never the header or the signature: no
    /// credential, and nothing a receiver can verify by itself (it must
    /// trust whoever passed it on). It holds personal data (e-mail, name):
    /// do not log it.
    ///
    /// ```
    /// # #[cfg(not(feature = "testing"))]
    /// # fn main() {}
    /// # #[cfg(feature = "testing")]
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// use base64::Engine;
    /// use base64::engine::general_purpose::URL_SAFE_NO_PAD;
    /// use meingpt_auth::testing::MockIssuer;
    ///
    /// let issuer = MockIssuer::start().await;
    /// let auth = issuer.auth().build().unwrap();
    /// let token = issuer.token().sub("user-1").sign();
    /// let user = auth.verify(&token).await.unwrap();
    ///
    /// assert_eq!(Some(user.payload_segment()), token.split('.').nth(1));
    /// let claims: serde_json::Value =
    ///     serde_json::from_slice(&URL_SAFE_NO_PAD.decode(user.payload_segment()).unwrap()).unwrap();
    /// assert_eq!(claims["sub"], "user-1");
    /// # }
    /// ```
    pub fn payload_segment(&self) -> &str {
        self.inner.signed.segment()
    }

    /// The verified token's bytes, shared with the verified-token cache.
    pub(crate) fn signed_token(&self) -> &Arc<str> {
        self.inner.signed.token()
    }

    /// About how many bytes this user holds in memory (shared data included),
    /// for the verified-token cache's budget. Each heap block is counted as
    /// the allocator hands it out: at least 32 bytes, in steps of 16.
    pub(crate) fn weight(&self) -> usize {
        fn heap(len: usize) -> usize {
            if len == 0 {
                0
            } else {
                (len + 8).next_multiple_of(16).max(32)
            }
        }
        let user = &*self.inner;
        let text = |value: &Option<String>| value.as_ref().map_or(0, |v| heap(v.len()));
        let roles: usize = user
            .roles
            .iter()
            .map(|role| match role {
                Role::Other(name) => heap(name.len()),
                _ => 0,
            })
            .sum();
        let teams: usize = user
            .teams
            .iter()
            .map(|team| heap(team.id.len()) + heap(team.name.len()))
            .sum();
        std::mem::size_of::<Self>()
            + heap(std::mem::size_of::<UserClaims>() + 16)
            + heap(user.sub.len())
            + heap(user.organization_id.len())
            + heap(user.issuer.len())
            + text(&user.email)
            + text(&user.username)
            + text(&user.organization_name)
            + text(&user.jti)
            + heap(user.roles.len() * std::mem::size_of::<Role>())
            + roles
            + heap(user.teams.len() * std::mem::size_of::<Team>())
            + teams
            // The token, behind its own reference counts.
            + heap(user.signed.token.len() + 16)
    }
}

impl fmt::Debug for MeinGptUser {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MeinGptUser")
            .field("sub", &self.inner.sub)
            .field("organization_id", &self.inner.organization_id)
            .field("roles", &self.inner.roles)
            .field("teams", &self.inner.teams.len())
            .field("exp", &self.inner.exp)
            .finish_non_exhaustive()
    }
}

impl Serialize for MeinGptUser {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let user = &self.inner;
        let mut out = serializer.serialize_struct("MeinGptUser", 12)?;
        out.serialize_field("sub", &user.sub)?;
        out.serialize_field("email", &user.email)?;
        out.serialize_field("username", &user.username)?;
        out.serialize_field("organization_id", &user.organization_id)?;
        out.serialize_field("organization_name", &user.organization_name)?;
        out.serialize_field("role", &user.roles.first())?;
        out.serialize_field("roles", &user.roles)?;
        out.serialize_field("teams", &user.teams)?;
        out.serialize_field("jti", &user.jti)?;
        out.serialize_field("iat", &user.iat)?;
        out.serialize_field("exp", &user.exp)?;
        out.serialize_field("iss", &user.issuer)?;
        out.end()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roles_map_to_known_variants_and_keep_unknown_names() {
        assert_eq!(Role::from("admin"), Role::Admin);
        assert_eq!(Role::from("member"), Role::Member);
        assert_eq!(Role::from("Admin"), Role::Other("Admin".into()));
        assert_eq!(Role::from("viewer").as_str(), "viewer");
    }
}

//! The verified user: [`MeinGptUser`], its [`Role`] and its [`Team`]s.

use std::fmt;
use std::sync::Arc;

use serde::ser::SerializeStruct;
use serde::{Deserialize, Serialize, Serializer};
use serde_json::{Map, Value};

use crate::error::InvalidToken;

/// A user's role in the meinGPT organization.
///
/// meinGPT sends `"admin"` or `"member"`; any other value (such as
/// `"viewer"`) is kept as [`Role::Other`]: the user still authenticates but
/// passes no guard that asks for admin or member. Matching is exact and
/// case-sensitive.
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
/// `Debug` prints the subject, organization, role and teams but never the
/// e-mail address or the user's name.
#[derive(Clone)]
pub struct MeinGptUser {
    inner: Arc<UserClaims>,
}

struct UserClaims {
    sub: String,
    organization_id: String,
    issuer: String,
    email: Option<String>,
    username: Option<String>,
    organization_name: Option<String>,
    roles: Vec<Role>,
    teams: Vec<Team>,
    jti: Option<String>,
    iat: Option<i64>,
    exp: i64,
    claims: Map<String, Value>,
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

    /// The user's e-mail address (`email`), if the token carries one.
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

    /// The user's role (`role`); `None` when the token names none.
    pub fn role(&self) -> Option<&Role> {
        self.inner.roles.first()
    }

    /// Every role the token names (meinGPT sends exactly one).
    pub fn roles(&self) -> &[Role] {
        &self.inner.roles
    }

    /// Whether the user has `role` (exact match).
    pub fn has_role(&self, role: &Role) -> bool {
        self.inner.roles.contains(role)
    }

    /// The teams the user belongs to (`teams`); empty when absent.
    pub fn teams(&self) -> &[Team] {
        &self.inner.teams
    }

    /// Whether the user is in the team with this id.
    pub fn in_team_id(&self, id: &str) -> bool {
        self.inner.teams.iter().any(|team| team.id == id)
    }

    /// Whether the user is in a team with this name (exact match).
    pub fn in_team_named(&self, name: &str) -> bool {
        self.inner.teams.iter().any(|team| team.name == name)
    }

    /// The token's unique id (`jti`).
    pub fn jti(&self) -> Option<&str> {
        self.inner.jti.as_deref()
    }

    /// When the token was issued (`iat`, seconds since the Unix epoch).
    pub fn issued_at(&self) -> Option<i64> {
        self.inner.iat
    }

    /// When the token expires (`exp`, seconds since the Unix epoch).
    pub fn expires_at(&self) -> i64 {
        self.inner.exp
    }

    /// All claims of the token as sent, for anything custom.
    pub fn claims(&self) -> &Map<String, Value> {
        &self.inner.claims
    }

    /// One claim by name, for anything custom.
    pub fn claim(&self, name: &str) -> Option<&Value> {
        self.inner.claims.get(name)
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

/// Claims already checked by the verifier (`iss`, `aud`, times), turned
/// into a user. Fails on any member of the wrong JSON type.
pub(crate) fn user_from_claims(
    claims: Map<String, Value>,
    organization_id: &str,
    issuer: &str,
    exp: i64,
    iat: Option<i64>,
) -> Result<MeinGptUser, InvalidToken> {
    let sub = match claims.get("sub") {
        Some(Value::String(sub)) if !sub.is_empty() => sub.clone(),
        Some(Value::String(_)) | None => return Err(InvalidToken::MissingClaim),
        Some(_) => return Err(InvalidToken::InvalidClaim),
    };
    let roles = match claims.get("role") {
        None | Some(Value::Null) => Vec::new(),
        Some(Value::String(role)) => vec![Role::from(role.as_str())],
        Some(_) => return Err(InvalidToken::InvalidClaim),
    };
    let teams = match claims.get("teams") {
        None | Some(Value::Null) => Vec::new(),
        Some(Value::Array(items)) => items
            .iter()
            .map(team_from_value)
            .collect::<Option<Vec<_>>>()
            .ok_or(InvalidToken::InvalidClaim)?,
        Some(_) => return Err(InvalidToken::InvalidClaim),
    };
    Ok(MeinGptUser {
        inner: Arc::new(UserClaims {
            sub,
            organization_id: organization_id.to_owned(),
            issuer: issuer.to_owned(),
            email: optional_string(&claims, "email")?,
            username: optional_string(&claims, "username")?,
            organization_name: optional_string(&claims, "organizationName")?,
            jti: optional_string(&claims, "jti")?,
            roles,
            teams,
            iat,
            exp,
            claims,
        }),
    })
}

fn optional_string(
    claims: &Map<String, Value>,
    name: &str,
) -> Result<Option<String>, InvalidToken> {
    match claims.get(name) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(value)) => Ok(Some(value.clone())),
        Some(_) => Err(InvalidToken::InvalidClaim),
    }
}

fn team_from_value(value: &Value) -> Option<Team> {
    let team = value.as_object()?;
    Some(Team {
        id: team.get("id")?.as_str()?.to_owned(),
        name: team.get("name")?.as_str()?.to_owned(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn user(claims: Value) -> Result<MeinGptUser, InvalidToken> {
        let Value::Object(map) = claims else {
            unreachable!()
        };
        user_from_claims(map, "org", "https://app.meingpt.com", 2_000_000_000, None)
    }

    #[test]
    fn roles_map_to_known_variants_and_keep_unknown_names() {
        assert_eq!(Role::from("admin"), Role::Admin);
        assert_eq!(Role::from("member"), Role::Member);
        assert_eq!(Role::from("Admin"), Role::Other("Admin".into()));
        assert_eq!(Role::from("viewer").as_str(), "viewer");
    }

    #[test]
    fn debug_never_prints_email_or_name() {
        let user = user(json!({
            "sub": "u1", "email": "ada@example.com", "username": "Ada Lovelace",
            "role": "admin", "teams": [{"id": "t1", "name": "Engineering"}]
        }))
        .unwrap();
        let printed = format!("{user:?}");
        assert!(printed.contains("u1"));
        assert!(!printed.contains("ada@example.com"));
        assert!(!printed.contains("Ada Lovelace"));
        assert!(!printed.contains("Engineering"));
    }

    #[test]
    fn wrongly_typed_claims_are_invalid() {
        assert_eq!(
            user(json!({"sub": 5})).unwrap_err(),
            InvalidToken::InvalidClaim
        );
        assert_eq!(
            user(json!({"sub": "u", "role": ["admin"]})).unwrap_err(),
            InvalidToken::InvalidClaim
        );
        assert_eq!(
            user(json!({"sub": "u", "teams": [{"id": 1, "name": "x"}]})).unwrap_err(),
            InvalidToken::InvalidClaim
        );
        assert_eq!(
            user(json!({"sub": "u", "email": true})).unwrap_err(),
            InvalidToken::InvalidClaim
        );
        assert_eq!(
            user(json!({"sub": ""})).unwrap_err(),
            InvalidToken::MissingClaim
        );
    }

    #[test]
    fn missing_teams_and_role_are_empty() {
        let user = user(json!({"sub": "u"})).unwrap();
        assert!(user.teams().is_empty());
        assert_eq!(user.role(), None);
    }
}

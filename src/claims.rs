//! The verified user: [`MeinGptUser`], its [`Role`] and its [`Team`]s.

use std::fmt;
use std::sync::{Arc, OnceLock};

use serde::ser::SerializeStruct;
use serde::{Deserialize, Serialize, Serializer};
use serde_json::{Map, Value};

use crate::error::InvalidToken;

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
/// token was verified, and [`claims`](Self::claims) reads the token's payload
/// as sent, parsed into a map on first use (per clone; the shared data keeps
/// only the payload's bytes).
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

/// How roles and the e-mail address are read from the claims.
#[derive(Debug, Clone)]
pub(crate) struct ClaimRules {
    /// The claim holding the role(s): a string, an array of strings, or a
    /// comma-separated string.
    pub(crate) role_claim: String,
    /// Compare roles ignoring ASCII case.
    pub(crate) roles_case_insensitive: bool,
}

impl Default for ClaimRules {
    fn default() -> Self {
        Self {
            role_claim: "role".to_owned(),
            roles_case_insensitive: false,
        }
    }
}

struct UserClaims {
    sub: String,
    roles_case_insensitive: bool,
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
    /// The verified payload (JSON), byte for byte as the token carried it.
    payload: Box<[u8]>,
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

    /// The user's e-mail address: the first of `email`, `upn` and
    /// `preferred_username` the token carries.
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

    /// Whether the user has `role` (exact match, or ignoring ASCII case when
    /// so configured).
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
        self.claims
            .get_or_init(|| crate::json::parse_object(&self.inner.payload).unwrap_or_default())
    }

    /// One claim by name, for anything custom.
    pub fn claim(&self, name: &str) -> Option<&Value> {
        self.claims().get(name)
    }

    /// The claims as your own type (any `serde::Deserialize`).
    pub fn claims_as<T: serde::de::DeserializeOwned>(&self) -> Result<T, serde_json::Error> {
        serde_json::from_slice(&self.inner.payload)
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
            + heap(user.payload.len())
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
/// into a user; `payload` is their JSON as the token carried it. Fails on
/// any member of the wrong JSON type.
pub(crate) fn user_from_claims(
    claims: &Map<String, Value>,
    payload: Box<[u8]>,
    organization_id: &str,
    issuer: &str,
    exp: i64,
    iat: Option<i64>,
    rules: &ClaimRules,
) -> Result<MeinGptUser, InvalidToken> {
    let sub = match claims.get("sub") {
        Some(Value::String(sub)) if !sub.is_empty() => sub.clone(),
        Some(Value::String(_)) | None => return Err(InvalidToken::MissingClaim),
        Some(_) => return Err(InvalidToken::InvalidClaim),
    };
    let roles = roles_from(claims.get(&rules.role_claim))?;
    let mut email = None;
    for name in ["email", "upn", "preferred_username"] {
        if let Some(found) = optional_string(claims, name)? {
            email = Some(found);
            break;
        }
    }
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
            roles_case_insensitive: rules.roles_case_insensitive,
            organization_id: organization_id.to_owned(),
            issuer: issuer.to_owned(),
            email,
            username: optional_string(claims, "username")?,
            organization_name: optional_string(claims, "organizationName")?,
            jti: optional_string(claims, "jti")?,
            roles,
            teams,
            iat,
            exp,
            payload,
        }),
        claims: OnceLock::new(),
    })
}

/// Roles as platforms send them: one string, a comma-separated string, or
/// an array of strings.
fn roles_from(value: Option<&Value>) -> Result<Vec<Role>, InvalidToken> {
    let split = |text: &str| -> Vec<Role> {
        text.split(',')
            .map(str::trim)
            .filter(|name| !name.is_empty())
            .map(Role::from)
            .collect()
    };
    match value {
        None | Some(Value::Null) => Ok(Vec::new()),
        Some(Value::String(text)) => Ok(split(text)),
        Some(Value::Array(items)) => items
            .iter()
            .map(|item| item.as_str().map(|name| Role::from(name.trim())))
            .collect::<Option<Vec<_>>>()
            .ok_or(InvalidToken::InvalidClaim),
        Some(_) => Err(InvalidToken::InvalidClaim),
    }
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
        user_with(claims_of(claims), &ClaimRules::default())
    }

    fn claims_of(claims: Value) -> Map<String, Value> {
        let Value::Object(map) = claims else {
            unreachable!()
        };
        map
    }

    fn user_with(
        claims: Map<String, Value>,
        rules: &ClaimRules,
    ) -> Result<MeinGptUser, InvalidToken> {
        let payload = serde_json::to_vec(&claims).unwrap().into_boxed_slice();
        user_from_claims(
            &claims,
            payload,
            "org",
            "https://app.meingpt.com",
            2_000_000_000,
            None,
            rules,
        )
    }

    #[test]
    fn roles_come_as_string_comma_string_or_array_from_the_configured_claim() {
        let rules = ClaimRules {
            role_claim: "roles".into(),
            roles_case_insensitive: false,
        };
        let one = user_with(claims_of(json!({"sub": "u", "roles": "editor"})), &rules).unwrap();
        assert_eq!(one.roles(), &[Role::Other("editor".into())]);
        let comma = user_with(
            claims_of(json!({"sub": "u", "roles": "admin, editor,,"})),
            &rules,
        )
        .unwrap();
        assert_eq!(comma.roles(), &[Role::Admin, Role::Other("editor".into())]);
        let array = user_with(
            claims_of(json!({"sub": "u", "roles": ["member", "x"]})),
            &rules,
        )
        .unwrap();
        assert!(array.has_role(&Role::Member));
        assert!(!array.has_role(&Role::Admin));
        let bad = user_with(claims_of(json!({"sub": "u", "roles": ["a", 1]})), &rules);
        assert_eq!(bad.unwrap_err(), InvalidToken::InvalidClaim);
    }

    #[test]
    fn case_insensitive_roles_match_ignoring_case() {
        let strict = ClaimRules::default();
        let loose = ClaimRules {
            roles_case_insensitive: true,
            ..ClaimRules::default()
        };
        let claims = json!({"sub": "u", "role": "ADMIN"});
        assert!(
            !user_with(claims_of(claims.clone()), &strict)
                .unwrap()
                .has_role(&Role::Admin)
        );
        assert!(
            user_with(claims_of(claims), &loose)
                .unwrap()
                .has_role(&Role::Admin)
        );
    }

    #[test]
    fn email_is_the_first_of_email_upn_and_preferred_username() {
        let rules = ClaimRules::default();
        let upn = user_with(
            claims_of(json!({"sub": "u", "upn": "a@corp", "preferred_username": "b@corp"})),
            &rules,
        )
        .unwrap();
        assert_eq!(upn.email(), Some("a@corp"));
        let preferred = user_with(
            claims_of(json!({"sub": "u", "preferred_username": "b@corp"})),
            &rules,
        )
        .unwrap();
        assert_eq!(preferred.email(), Some("b@corp"));
        let email = user_with(
            claims_of(json!({"sub": "u", "email": "c@corp", "upn": "a@corp"})),
            &rules,
        )
        .unwrap();
        assert_eq!(email.email(), Some("c@corp"));
    }

    #[test]
    fn custom_claims_deserialize_into_the_callers_type() {
        #[derive(serde::Deserialize)]
        struct Mine {
            tenant: String,
            level: u8,
        }
        let user = user_with(
            claims_of(json!({"sub": "u", "tenant": "t1", "level": 3})),
            &ClaimRules::default(),
        )
        .unwrap();
        let mine: Mine = user.claims_as().unwrap();
        assert_eq!((mine.tenant.as_str(), mine.level), ("t1", 3));
        assert!(user.claims_as::<Mine>().is_ok());
        #[derive(Debug, serde::Deserialize)]
        #[allow(dead_code)]
        struct Needs {
            missing: String,
        }
        assert!(user.claims_as::<Needs>().is_err());
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
            user(json!({"sub": "u", "role": 5})).unwrap_err(),
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

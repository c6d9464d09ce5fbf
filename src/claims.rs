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
    /// The claim holding the role(s): a string (one role) or an array of
    /// strings (one role each); a dotted path (`realm_access.roles`) reaches
    /// into nested objects.
    pub(crate) role_claim: String,
    /// Compare roles ignoring ASCII case.
    pub(crate) roles_case_insensitive: bool,
    /// Read a string role claim as a comma-separated list.
    pub(crate) roles_comma_separated: bool,
    /// Without `email`, take the address from `upn`, then
    /// `preferred_username`.
    pub(crate) email_fallback: bool,
}

impl Default for ClaimRules {
    fn default() -> Self {
        Self {
            role_claim: "role".to_owned(),
            roles_case_insensitive: false,
            roles_comma_separated: false,
            email_fallback: false,
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
    /// The `scope` and `scp` items, in that order.
    scopes: Vec<Box<str>>,
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
    let roles = roles_from(claim_at_path(claims, &rules.role_claim), rules)?;
    let email = email_from(claims, rules)?;
    let mut scopes = Vec::new();
    for name in ["scope", "scp"] {
        match claims.get(name) {
            Some(value) if !valid_scopes(value) => return Err(InvalidToken::InvalidClaim),
            Some(value) => scopes.extend(scope_items(value).map(Box::<str>::from)),
            None => {}
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
            scopes,
            iat,
            exp,
            payload,
        }),
        claims: OnceLock::new(),
    })
}

/// The claim named `path`: the top-level member of that exact name if there
/// is one (claim names such as `https://example.com/roles` contain dots),
/// else the dotted path through nested objects (`realm_access.roles`,
/// `resource_access.my.client.roles`: a segment may itself contain dots).
fn claim_at_path<'a>(claims: &'a Map<String, Value>, path: &str) -> Option<&'a Value> {
    if let Some(value) = claims.get(path) {
        return Some(value);
    }
    path.match_indices('.')
        .find_map(|(at, _)| match claims.get(&path[..at]) {
            Some(Value::Object(nested)) => claim_at_path(nested, &path[at + 1..]),
            _ => None,
        })
}

/// Roles as the configuration says to read them: one string is one role
/// (split on commas, ASCII spaces around items dropped, only when so
/// configured); an array holds one role per item. Never trimmed otherwise:
/// `" admin"` is not `admin`.
fn roles_from(value: Option<&Value>, rules: &ClaimRules) -> Result<Vec<Role>, InvalidToken> {
    match value {
        None | Some(Value::Null) => Ok(Vec::new()),
        Some(Value::String(text)) if rules.roles_comma_separated => Ok(text
            .split(',')
            .map(|item| item.trim_matches(' '))
            .filter(|name| !name.is_empty())
            .map(Role::from)
            .collect()),
        Some(Value::String(text)) if text.is_empty() => Ok(Vec::new()),
        Some(Value::String(text)) => Ok(vec![Role::from(text.as_str())]),
        Some(Value::Array(items)) => items
            .iter()
            .map(|item| item.as_str().map(Role::from))
            .collect::<Option<Vec<_>>>()
            .ok_or(InvalidToken::InvalidClaim),
        Some(_) => Err(InvalidToken::InvalidClaim),
    }
}

/// The e-mail address: `email`, unless `email_verified` is false; `upn`
/// and `preferred_username` only when the configuration asks for them.
fn email_from(
    claims: &Map<String, Value>,
    rules: &ClaimRules,
) -> Result<Option<String>, InvalidToken> {
    // Some providers send the flag as a string.
    let verified = match claims.get("email_verified") {
        None | Some(Value::Null) => true,
        Some(Value::Bool(verified)) => *verified,
        Some(Value::String(text)) if text == "true" => true,
        Some(Value::String(text)) if text == "false" => false,
        Some(_) => return Err(InvalidToken::InvalidClaim),
    };
    let names: &[&str] = if rules.email_fallback {
        &["email", "upn", "preferred_username"]
    } else {
        &["email"]
    };
    let mut email = None;
    for name in names {
        // Every candidate is type-checked, even when an earlier one is used.
        let found = optional_string(claims, name)?;
        email = email.or(found);
    }
    Ok(email.filter(|_| verified))
}

/// A `scope` / `scp` claim: a string of scopes separated by spaces, or an
/// array of strings.
fn valid_scopes(value: &Value) -> bool {
    match value {
        Value::String(_) | Value::Null => true,
        Value::Array(items) => items.iter().all(Value::is_string),
        _ => false,
    }
}

fn scope_items(value: &Value) -> Box<dyn Iterator<Item = &str> + '_> {
    match value {
        Value::String(text) => Box::new(text.split(' ').filter(|scope| !scope.is_empty())),
        Value::Array(items) => Box::new(items.iter().filter_map(Value::as_str)),
        _ => Box::new(std::iter::empty()),
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
    fn a_role_string_is_one_role_unless_comma_splitting_is_configured() {
        let rules = ClaimRules {
            role_claim: "roles".into(),
            ..ClaimRules::default()
        };
        let one = user_with(claims_of(json!({"sub": "u", "roles": "editor"})), &rules).unwrap();
        assert_eq!(one.roles(), &[Role::Other("editor".into())]);
        let comma = user_with(claims_of(json!({"sub": "u", "roles": "admin, x"})), &rules).unwrap();
        assert_eq!(comma.roles(), &[Role::Other("admin, x".into())]);
        let split = ClaimRules {
            roles_comma_separated: true,
            ..rules.clone()
        };
        let comma = user_with(
            claims_of(json!({"sub": "u", "roles": " admin , editor,,\u{a0}member"})),
            &split,
        )
        .unwrap();
        assert_eq!(
            comma.roles(),
            &[
                Role::Admin,
                Role::Other("editor".into()),
                Role::Other("\u{a0}member".into())
            ]
        );
        let array = user_with(
            claims_of(json!({"sub": "u", "roles": ["member", " admin"]})),
            &rules,
        )
        .unwrap();
        assert!(array.has_role(&Role::Member));
        assert!(!array.has_role(&Role::Admin));
        let bad = user_with(claims_of(json!({"sub": "u", "roles": ["a", 1]})), &rules);
        assert_eq!(bad.unwrap_err(), InvalidToken::InvalidClaim);
    }

    #[test]
    fn a_dotted_role_claim_reaches_into_nested_objects() {
        let rules = ClaimRules {
            role_claim: "resource_access.my.app.roles".into(),
            ..ClaimRules::default()
        };
        let claims = json!({"sub": "u", "resource_access": {"my.app": {"roles": ["admin"]}}});
        let user = user_with(claims_of(claims), &rules).unwrap();
        assert_eq!(user.roles(), &[Role::Admin]);
        let rules = ClaimRules {
            role_claim: "https://example.com/roles".into(),
            ..ClaimRules::default()
        };
        let claims = json!({"sub": "u", "https://example.com/roles": ["member"]});
        let user = user_with(claims_of(claims), &rules).unwrap();
        assert_eq!(user.roles(), &[Role::Member]);
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
    fn email_comes_from_email_only_unless_the_fallback_is_configured() {
        let strict = ClaimRules::default();
        let fallback = ClaimRules {
            email_fallback: true,
            ..ClaimRules::default()
        };
        let upn = claims_of(json!({"sub": "u", "upn": "a@corp", "preferred_username": "b@corp"}));
        assert_eq!(user_with(upn.clone(), &strict).unwrap().email(), None);
        assert_eq!(user_with(upn, &fallback).unwrap().email(), Some("a@corp"));
        let preferred = claims_of(json!({"sub": "u", "preferred_username": "b@corp"}));
        assert_eq!(
            user_with(preferred, &fallback).unwrap().email(),
            Some("b@corp")
        );
        let email = claims_of(json!({"sub": "u", "email": "c@corp", "upn": "a@corp"}));
        assert_eq!(user_with(email, &fallback).unwrap().email(), Some("c@corp"));
        for verified in [json!(false), json!("false")] {
            let unverified =
                claims_of(json!({"sub": "u", "email": "c@corp", "email_verified": verified}));
            assert_eq!(
                user_with(unverified.clone(), &strict).unwrap().email(),
                None
            );
            assert_eq!(user_with(unverified, &fallback).unwrap().email(), None);
        }
        let bad = claims_of(json!({"sub": "u", "email": "c@corp", "email_verified": 1}));
        assert_eq!(
            user_with(bad, &strict).unwrap_err(),
            InvalidToken::InvalidClaim
        );
    }

    #[test]
    fn scopes_come_from_scope_and_scp_as_strings_or_arrays() {
        let user =
            user(json!({"sub": "u", "scope": "openid  profile", "scp": ["Files.Read"]})).unwrap();
        assert_eq!(
            user.scopes().collect::<Vec<_>>(),
            ["openid", "profile", "Files.Read"]
        );
        assert!(user.has_scope("profile"));
        assert!(!user.has_scope("Profile"));
        assert_eq!(
            self::user(json!({"sub": "u", "scp": 3})).unwrap_err(),
            InvalidToken::InvalidClaim
        );
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

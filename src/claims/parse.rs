//! Reading a [`MeinGptUser`] from verified claims, by the configured
//! [`ClaimRules`]: any member of the wrong JSON type makes the token invalid.

use std::sync::{Arc, OnceLock};

use serde_json::{Map, Value};

use super::{MeinGptUser, Role, SignedPayload, Team, UserClaims};
use crate::error::InvalidToken;

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
    /// The issuer is a meinGPT instance (the audience an organization).
    pub(crate) meingpt: bool,
}

impl Default for ClaimRules {
    fn default() -> Self {
        Self {
            role_claim: "role".to_owned(),
            roles_case_insensitive: false,
            roles_comma_separated: false,
            email_fallback: false,
            meingpt: true,
        }
    }
}

/// Claims already checked by the verifier (`iss`, `aud`, times), turned
/// into a user; `signed` is their segment in the verified token. Fails on
/// any member of the wrong JSON type.
pub(crate) fn user_from_claims(
    claims: &Map<String, Value>,
    signed: SignedPayload,
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
            meingpt: rules.meingpt,
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
            signed,
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
    use base64::Engine;
    use base64::engine::general_purpose::URL_SAFE_NO_PAD;
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
        let segment = URL_SAFE_NO_PAD.encode(serde_json::to_vec(&claims).unwrap());
        let token = format!("eyJhbGciOiJub25lIn0.{segment}.c2ln");
        let signed = SignedPayload::new(token.into(), 20..20 + segment.len());
        user_from_claims(
            &claims,
            signed,
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

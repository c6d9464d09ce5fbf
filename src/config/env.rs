//! Configuration from environment variables.
//!
//! | variable | meaning |
//! | --- | --- |
//! | `MEINGPT_ORG_ID` | organization id; selects meinGPT mode |
//! | `MEINGPT_ISSUER` | instance origin; default `https://app.meingpt.com` |
//! | `MEINGPT_JWKS_URL` | override of the derived JWKS URL |

use super::{ConfigError, MeinGptAuth, MeinGptAuthBuilder};

/// An authenticator configured from `lookup` (the environment, or a map in
/// tests). Every error names the variable at fault.
pub(crate) fn auth_from(
    lookup: impl Fn(&str) -> Option<String>,
) -> Result<MeinGptAuth, ConfigError> {
    builder_from(lookup)?
        .build()
        .map_err(|e| match e.setting() {
            "organization" => e.rename("MEINGPT_ORG_ID"),
            "issuer" => e.rename("MEINGPT_ISSUER"),
            "jwks_url" => e.rename("MEINGPT_JWKS_URL"),
            _ => e,
        })
}

fn builder_from(
    lookup: impl Fn(&str) -> Option<String>,
) -> Result<MeinGptAuthBuilder, ConfigError> {
    let var = |name: &'static str| -> Result<Option<String>, ConfigError> {
        match lookup(name) {
            None => Ok(None),
            Some(value) if value.trim().is_empty() => {
                Err(ConfigError::invalid(name, "it is set but empty"))
            }
            Some(value) => Ok(Some(value.trim().to_owned())),
        }
    };
    let Some(organization) = var("MEINGPT_ORG_ID")? else {
        return Err(ConfigError::Missing {
            setting: "MEINGPT_ORG_ID",
        });
    };
    let mut builder = MeinGptAuthBuilder::default().organization(organization);
    if let Some(issuer) = var("MEINGPT_ISSUER")? {
        builder = builder.issuer(issuer);
    }
    if let Some(url) = var("MEINGPT_JWKS_URL")? {
        builder = builder.jwks_url(url);
    }
    Ok(builder)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn from(vars: &[(&str, &str)]) -> Result<MeinGptAuth, ConfigError> {
        let map: HashMap<String, String> = vars
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        auth_from(|name| map.get(name).cloned())
    }

    #[test]
    fn organization_is_required() {
        assert_eq!(
            from(&[]).unwrap_err().to_string(),
            "MEINGPT_ORG_ID is not set"
        );
    }

    #[test]
    fn errors_name_the_variable() {
        let err = from(&[
            ("MEINGPT_ORG_ID", "org"),
            ("MEINGPT_ISSUER", "http://evil.example"),
        ])
        .unwrap_err();
        assert_eq!(err.setting(), "MEINGPT_ISSUER");
        let err = from(&[("MEINGPT_ORG_ID", "org"), ("MEINGPT_JWKS_URL", "nope")]).unwrap_err();
        assert_eq!(err.setting(), "MEINGPT_JWKS_URL");
        let err = from(&[("MEINGPT_ORG_ID", "a b")]).unwrap_err();
        assert_eq!(err.setting(), "MEINGPT_ORG_ID");
        let err = from(&[("MEINGPT_ORG_ID", " ")]).unwrap_err();
        assert_eq!(err.setting(), "MEINGPT_ORG_ID");
    }

    #[test]
    fn a_full_configuration_builds() {
        let auth = from(&[
            ("MEINGPT_ORG_ID", "org"),
            ("MEINGPT_ISSUER", "http://127.0.0.1:4000"),
            ("MEINGPT_JWKS_URL", "http://127.0.0.1:4000/keys"),
        ])
        .unwrap();
        assert_eq!(auth.realm(), "meingpt");
    }
}

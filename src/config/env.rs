//! Configuration from environment variables.
//!
//! | variable | meaning |
//! | --- | --- |
//! | `MEINGPT_ORG_ID` | organization id(s), comma separated; configures meinGPT |
//! | `MEINGPT_ISSUER` | instance origin; default `https://app.meingpt.com` |
//! | `MEINGPT_JWKS_URL` | override of the derived JWKS URL (single organization) |
//! | `AUTH_TYPE` | `jwt_oidc` or `jwt_local` (OpenGPTs names) |
//! | `JWT_ISS` | the issuer (`iss`); for `jwt_oidc` also where discovery starts |
//! | `JWT_AUD` | accepted audience(s), comma separated |
//! | `JWT_ALG` | `jwt_local`: the algorithm (required); `jwt_oidc`: optional allow-list, comma separated |
//! | `JWT_DECODE_KEY_B64` | `jwt_local`: base64 of a PEM public key, or of the raw secret for HS* |
//! | `JWT_ROLE_CLAIM` | `jwt_oidc`/`jwt_local`: the claim that holds roles (default `roles`; a name or a dotted path) |
//! | `JWKS_CA_FILE` | path of a PEM bundle of extra root certificates trusted for JWKS and discovery fetches (besides the platform's) |
//! | `MCP_RESOURCE_URL` | the protected resource (the URL OAuth clients such as MCP clients use): its RFC 9728 metadata, named in every challenge; without `JWT_AUD`, the `AUTH_TYPE` issuer's tokens must be issued for it (`aud`, RFC 8707) |
//! | `MCP_SCOPES` | the resource's `scopes_supported`, space or comma separated (needs `MCP_RESOURCE_URL`) |
//!
//! `MEINGPT_ORG_ID` and `AUTH_TYPE` may be set together: the authenticator
//! then accepts meinGPT tokens and the other issuer's, each token checked by
//! the issuer its `iss` names (see [`MeinGptAuth::from_issuers`]).
//!
//! A variable that would have no effect is refused, never ignored: `JWT_*`
//! without `AUTH_TYPE`, `MEINGPT_ISSUER` or `MEINGPT_JWKS_URL` without
//! `MEINGPT_ORG_ID`, `MEINGPT_JWKS_URL` with several organizations,
//! `JWT_DECODE_KEY_B64` with `jwt_oidc`, `JWKS_CA_FILE` when nothing is
//! fetched (`jwt_local` alone), `MCP_SCOPES` without `MCP_RESOURCE_URL`.

use base64::Engine;
use base64::alphabet;
use base64::engine::{DecodePaddingMode, GeneralPurpose, GeneralPurposeConfig};
use jsonwebtoken::Algorithm;

use super::{ConfigError, MeinGptAuthBuilder, StaticKey};
use crate::auth::MeinGptAuth;
use crate::resource::ProtectedResource;

/// Every variable [`MeinGptAuth::from_env`](crate::MeinGptAuth::from_env) reads: a deployment that sets
/// any of them is configured (and, say, never starts a development issuer).
pub const ENV_VARIABLES: [&str; 12] = [
    "MEINGPT_ORG_ID",
    "MEINGPT_ISSUER",
    "MEINGPT_JWKS_URL",
    "AUTH_TYPE",
    "JWT_ISS",
    "JWT_AUD",
    "JWT_ALG",
    "JWT_DECODE_KEY_B64",
    "JWT_ROLE_CLAIM",
    "JWKS_CA_FILE",
    "MCP_RESOURCE_URL",
    "MCP_SCOPES",
];

/// The variables of `AUTH_TYPE` modes; none of them has an effect without it.
const JWT_VARIABLES: [&str; 5] = [
    "JWT_ISS",
    "JWT_AUD",
    "JWT_ALG",
    "JWT_DECODE_KEY_B64",
    "JWT_ROLE_CLAIM",
];

/// What to do about a variable that is not set, for the one-line error.
pub(crate) fn missing_hint(variable: &str) -> Option<&'static str> {
    Some(match variable {
        "MEINGPT_ORG_ID" => {
            "set it to your meinGPT organization id (several: comma separated), \
             or set AUTH_TYPE (jwt_oidc or jwt_local) for another issuer"
        }
        "JWT_ISS" => "the issuer (`iss`) tokens must carry, such as https://id.example.com",
        "JWT_AUD" => {
            "the audience(s) (`aud`) tokens must be issued for, comma separated; or set \
             MCP_RESOURCE_URL to accept tokens issued for that resource"
        }
        "JWT_ALG" => "AUTH_TYPE=jwt_local needs the algorithm, such as RS256, ES256 or HS256",
        "JWT_DECODE_KEY_B64" => {
            "AUTH_TYPE=jwt_local needs the base64 of a PEM public key (base64 -w0 public.pem), \
             or of the secret for HS*"
        }
        _ => return None,
    })
}

/// An authenticator configured from `lookup` (the environment, or a map in
/// tests). Every error names the variable at fault.
pub(crate) fn auth_from(
    lookup: impl Fn(&str) -> Option<String>,
) -> Result<MeinGptAuth, ConfigError> {
    let (mut builders, names): (Vec<_>, Vec<_>) = builders_from(&lookup)?.into_iter().unzip();
    let roots = ca_file(&lookup)?;
    for builder in &mut builders {
        builder.jwks.extra_roots = roots.clone();
    }
    super::build::build_issuers(builders).map_err(|(index, e)| {
        match names.get(index).and_then(|names| names.rename(e.setting())) {
            Some(variable) => e.rename(variable),
            None => e,
        }
    })
}

/// `JWKS_CA_FILE`: the root certificates of a PEM bundle, each one checked
/// now so that a bad file stops the start, not the first fetch.
fn ca_file(
    lookup: impl Fn(&str) -> Option<String>,
) -> Result<Vec<reqwest::Certificate>, ConfigError> {
    const VARIABLE: &str = "JWKS_CA_FILE";
    let Some(path) = lookup(VARIABLE) else {
        return Ok(Vec::new());
    };
    let path = path.trim();
    if path.is_empty() {
        return Err(ConfigError::invalid(VARIABLE, "it is set but empty"));
    }
    if lookup("AUTH_TYPE").as_deref() == Some("jwt_local") && lookup("MEINGPT_ORG_ID").is_none() {
        return Err(ConfigError::invalid(
            VARIABLE,
            "has no effect with AUTH_TYPE=jwt_local (its key is configured, nothing is \
             fetched); remove it",
        ));
    }
    let pem = std::fs::read(path).map_err(|e| {
        let reason = match e.kind() {
            std::io::ErrorKind::NotFound => format!(
                "{path} does not exist; set it to the path of a PEM file of root certificates"
            ),
            _ => format!("cannot read {path}: {e}"),
        };
        ConfigError::invalid(VARIABLE, reason)
    })?;
    let certificates = reqwest::Certificate::from_pem_bundle(&pem).map_err(|_| {
        ConfigError::invalid(
            VARIABLE,
            format!("{path} is not a PEM bundle: a CERTIFICATE block does not decode"),
        )
    })?;
    if certificates.is_empty() {
        return Err(ConfigError::invalid(
            VARIABLE,
            format!("{path} holds no certificate (no -----BEGIN CERTIFICATE----- block)"),
        ));
    }
    let count = certificates.len();
    for (index, certificate) in certificates.iter().enumerate() {
        // A client that trusts only this root parses it as a trust anchor,
        // as the fetching client will.
        reqwest::Client::builder()
            .tls_certs_only([certificate.clone()])
            .build()
            .map_err(|e| {
                // The innermost cause is rustls's, which speaks of a peer.
                let mut reason = e.to_string();
                let mut cause = std::error::Error::source(&e);
                while let Some(inner) = cause {
                    reason = inner.to_string();
                    cause = inner.source();
                }
                let reason = reason
                    .strip_prefix("invalid peer certificate: ")
                    .unwrap_or(&reason);
                ConfigError::invalid(
                    VARIABLE,
                    format!(
                        "certificate {} of {count} in {path} is not a valid X.509 \
                         certificate ({reason})",
                        index + 1
                    ),
                )
            })?;
    }
    Ok(certificates)
}

/// Which variable stands for which builder setting of one issuer.
struct Names {
    issuer: &'static str,
    audience: &'static str,
    jwks_url: &'static str,
}

impl Names {
    fn rename(&self, setting: &str) -> Option<&'static str> {
        match setting {
            "organization" | "audience" => Some(self.audience),
            "issuer" => Some(self.issuer),
            "jwks_url" | "url" => Some(self.jwks_url),
            "static_key" => Some("JWT_DECODE_KEY_B64"),
            "algorithms" => Some("JWT_ALG"),
            "role_claim" => Some("JWT_ROLE_CLAIM"),
            "resource" | "resource_audience" | "authorization_servers" => Some("MCP_RESOURCE_URL"),
            "scopes_supported" => Some("MCP_SCOPES"),
            _ => None,
        }
    }
}

/// The environment, read through `lookup`.
struct Env<'a> {
    lookup: &'a dyn Fn(&str) -> Option<String>,
}

impl Env<'_> {
    fn is_set(&self, name: &str) -> bool {
        (self.lookup)(name).is_some()
    }

    /// A variable's trimmed value; set but empty is an error.
    fn var(&self, name: &'static str) -> Result<Option<String>, ConfigError> {
        match (self.lookup)(name) {
            None => Ok(None),
            Some(value) if value.trim().is_empty() => {
                Err(ConfigError::invalid(name, "it is set but empty"))
            }
            Some(value) => Ok(Some(value.trim().to_owned())),
        }
    }

    fn required(&self, name: &'static str) -> Result<String, ConfigError> {
        self.var(name)?
            .ok_or(ConfigError::Missing { setting: name })
    }
}

/// A comma-separated list, items trimmed, empty items dropped.
fn list(value: &str) -> Vec<String> {
    value
        .split(',')
        .map(str::trim)
        .filter(|item| !item.is_empty())
        .map(str::to_owned)
        .collect()
}

/// One builder per configured issuer: meinGPT (`MEINGPT_ORG_ID`) first,
/// then the `AUTH_TYPE` issuer; at least one of them.
fn builders_from(
    lookup: &dyn Fn(&str) -> Option<String>,
) -> Result<Vec<(MeinGptAuthBuilder, Names)>, ConfigError> {
    let env = Env { lookup };
    let auth_type = env.var("AUTH_TYPE")?;
    if auth_type.is_none()
        && let Some(name) = JWT_VARIABLES.into_iter().find(|name| env.is_set(name))
    {
        return Err(ConfigError::invalid(
            name,
            "has no effect without AUTH_TYPE (jwt_oidc or jwt_local); \
             set AUTH_TYPE, or remove it for meinGPT mode (MEINGPT_ORG_ID)",
        ));
    }
    if !env.is_set("MEINGPT_ORG_ID")
        && let Some(name) = ["MEINGPT_ISSUER", "MEINGPT_JWKS_URL"]
            .into_iter()
            .find(|name| env.is_set(name))
    {
        return Err(ConfigError::invalid(
            name,
            "has no effect without MEINGPT_ORG_ID; set MEINGPT_ORG_ID to your organization id",
        ));
    }
    let resource = resource_from(&env)?;
    let mut issuers = Vec::with_capacity(2);
    if env.is_set("MEINGPT_ORG_ID") || auth_type.is_none() {
        issuers.push(meingpt_from(&env)?);
    }
    if let Some(auth_type) = auth_type {
        issuers.push(other_from(&env, &auth_type)?);
    }
    if let (Some(resource), Some((first, _))) = (resource, issuers.first_mut()) {
        *first = std::mem::take(first).protected_resource(resource);
    }
    Ok(issuers)
}

/// `MCP_RESOURCE_URL` and `MCP_SCOPES`: the protected resource.
fn resource_from(env: &Env<'_>) -> Result<Option<ProtectedResource>, ConfigError> {
    let scopes = env.var("MCP_SCOPES")?;
    let Some(url) = env.var("MCP_RESOURCE_URL")? else {
        if scopes.is_some() {
            return Err(ConfigError::invalid(
                "MCP_SCOPES",
                "has no effect without MCP_RESOURCE_URL; set MCP_RESOURCE_URL to the URL MCP \
                 clients use, such as https://mcp.example.com/mcp",
            ));
        }
        return Ok(None);
    };
    let scopes: Vec<String> = scopes
        .iter()
        .flat_map(|scopes| scopes.split(|c: char| c == ',' || c.is_ascii_whitespace()))
        .filter(|scope| !scope.is_empty())
        .map(str::to_owned)
        .collect();
    Ok(Some(ProtectedResource::new(url).scopes_supported(scopes)))
}

/// The audiences of `JWT_AUD`; `None` when it is unset beside
/// `MCP_RESOURCE_URL`: then tokens must be issued for the resource itself
/// (audience binding).
fn audiences(env: &Env<'_>) -> Result<Option<Vec<String>>, ConfigError> {
    if !env.is_set("JWT_AUD") && env.is_set("MCP_RESOURCE_URL") {
        return Ok(None);
    }
    Ok(Some(list(&env.required("JWT_AUD")?)))
}

/// `builder` accepting `audiences`, or bound to the resource.
fn with_audiences(
    builder: MeinGptAuthBuilder,
    audiences: Option<Vec<String>>,
) -> MeinGptAuthBuilder {
    match audiences {
        Some(audiences) => audiences
            .into_iter()
            .fold(builder, MeinGptAuthBuilder::audience),
        None => builder.resource_audience(),
    }
}

/// meinGPT: `MEINGPT_ORG_ID`, `MEINGPT_ISSUER`, `MEINGPT_JWKS_URL`.
fn meingpt_from(env: &Env<'_>) -> Result<(MeinGptAuthBuilder, Names), ConfigError> {
    let organizations = list(&env.required("MEINGPT_ORG_ID")?);
    if organizations.is_empty() {
        return Err(ConfigError::invalid(
            "MEINGPT_ORG_ID",
            "no organization id in the list",
        ));
    }
    if organizations.len() > 1 && env.is_set("MEINGPT_JWKS_URL") {
        return Err(ConfigError::invalid(
            "MEINGPT_JWKS_URL",
            format!(
                "has no effect with {} organizations in MEINGPT_ORG_ID (each one's JWKS URL \
                 is derived from MEINGPT_ISSUER); remove it, or set one organization",
                organizations.len()
            ),
        ));
    }
    let mut builder = MeinGptAuthBuilder::default().organizations(organizations);
    if let Some(issuer) = env.var("MEINGPT_ISSUER")? {
        builder = builder.issuer(issuer);
    }
    if let Some(url) = env.var("MEINGPT_JWKS_URL")? {
        builder = builder.jwks_url(url);
    }
    let names = Names {
        issuer: "MEINGPT_ISSUER",
        audience: "MEINGPT_ORG_ID",
        jwks_url: "MEINGPT_JWKS_URL",
    };
    Ok((builder, names))
}

/// The `AUTH_TYPE` issuer: `jwt_oidc` or `jwt_local` with the `JWT_*`
/// variables.
fn other_from(env: &Env<'_>, auth_type: &str) -> Result<(MeinGptAuthBuilder, Names), ConfigError> {
    match auth_type {
        "jwt_oidc" => {
            if env.is_set("JWT_DECODE_KEY_B64") {
                return Err(ConfigError::invalid(
                    "JWT_DECODE_KEY_B64",
                    "has no effect with AUTH_TYPE=jwt_oidc (keys come from the issuer's JWKS); \
                     remove it, or use AUTH_TYPE=jwt_local",
                ));
            }
            let issuer = env.required("JWT_ISS")?;
            let mut builder = with_audiences(MeinGptAuth::oidc(issuer), audiences(env)?);
            if let Some(names) = env.var("JWT_ALG")? {
                let algorithms = list(&names)
                    .iter()
                    .map(|name| algorithm(name))
                    .collect::<Result<Vec<_>, _>>()?;
                builder = builder.algorithms(algorithms);
            }
            if let Some(claim) = env.var("JWT_ROLE_CLAIM")? {
                builder = builder.role_claim(claim);
            }
            Ok((builder, oidc_names()))
        }
        "jwt_local" => {
            let issuer = env.required("JWT_ISS")?;
            let audiences = audiences(env)?;
            let alg = algorithm(&env.required("JWT_ALG")?)?;
            let encoded: String = env
                .required("JWT_DECODE_KEY_B64")?
                .chars()
                .filter(|c| !c.is_ascii_whitespace())
                .collect();
            let bytes = decode_base64(&encoded)?;
            let key = if is_hmac(alg) {
                StaticKey::secret(alg, bytes)
            } else {
                StaticKey::pem(alg, bytes)
            };
            let mut builder = with_audiences(MeinGptAuth::static_key(issuer, key), audiences);
            if let Some(claim) = env.var("JWT_ROLE_CLAIM")? {
                builder = builder.role_claim(claim);
            }
            Ok((builder, oidc_names()))
        }
        other => Err(ConfigError::invalid(
            "AUTH_TYPE",
            format!("{other:?} is not jwt_oidc or jwt_local"),
        )),
    }
}

fn oidc_names() -> Names {
    Names {
        issuer: "JWT_ISS",
        audience: "JWT_AUD",
        jwks_url: "JWT_ISS",
    }
}

/// `JWT_DECODE_KEY_B64`: standard or URL-safe base64, padded or not
/// (whitespace already removed). The error never echoes the value.
fn decode_base64(encoded: &str) -> Result<Vec<u8>, ConfigError> {
    if encoded.starts_with("-----BEGIN") {
        return Err(ConfigError::invalid(
            "JWT_DECODE_KEY_B64",
            "expected the base64 of a PEM key, found the PEM text itself; \
             set it to the output of `base64 -w0 public.pem`",
        ));
    }
    let config =
        GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent);
    GeneralPurpose::new(&alphabet::STANDARD, config)
        .decode(encoded)
        .or_else(|_| GeneralPurpose::new(&alphabet::URL_SAFE, config).decode(encoded))
        .map_err(|_| {
            ConfigError::invalid(
                "JWT_DECODE_KEY_B64",
                "it is not base64: expected standard or URL-safe base64 (padding optional) \
                 of a PEM public key, or of the secret for HS*",
            )
        })
}

fn is_hmac(alg: Algorithm) -> bool {
    matches!(alg, Algorithm::HS256 | Algorithm::HS384 | Algorithm::HS512)
}

fn algorithm(name: &str) -> Result<Algorithm, ConfigError> {
    if name.eq_ignore_ascii_case("none") {
        return Err(ConfigError::invalid(
            "JWT_ALG",
            "alg none (unsigned tokens) is never accepted",
        ));
    }
    name.parse::<Algorithm>().map_err(|_| {
        ConfigError::invalid(
            "JWT_ALG",
            format!("{name:?} is not one of RS256/384/512, PS256/384/512, ES256/384, EdDSA, HS256/384/512"),
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use base64::engine::general_purpose::STANDARD;
    use std::collections::HashMap;

    fn from(vars: &[(&str, &str)]) -> Result<MeinGptAuth, ConfigError> {
        let map: HashMap<String, String> = vars
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        auth_from(|name| map.get(name).cloned())
    }

    fn setting(vars: &[(&str, &str)]) -> &'static str {
        from(vars).unwrap_err().setting()
    }

    fn message(vars: &[(&str, &str)]) -> String {
        from(vars).unwrap_err().to_string()
    }

    #[test]
    fn without_any_mode_the_error_names_both_ways_to_configure() {
        assert_eq!(
            message(&[]),
            "MEINGPT_ORG_ID is not set: set it to your meinGPT organization id \
             (several: comma separated), or set AUTH_TYPE (jwt_oidc or jwt_local) for another issuer"
        );
    }

    #[test]
    fn meingpt_variables_without_an_organization_are_refused() {
        assert_eq!(
            message(&[("MEINGPT_ISSUER", "https://x.example")]),
            "MEINGPT_ISSUER is invalid: has no effect without MEINGPT_ORG_ID; \
             set MEINGPT_ORG_ID to your organization id"
        );
        assert_eq!(
            setting(&[("MEINGPT_JWKS_URL", "https://x.example/jwks")]),
            "MEINGPT_JWKS_URL"
        );
    }

    #[test]
    fn jwt_variables_without_auth_type_are_refused() {
        for name in JWT_VARIABLES {
            assert_eq!(
                message(&[("MEINGPT_ORG_ID", "org"), (name, "x")]),
                format!(
                    "{name} is invalid: has no effect without AUTH_TYPE (jwt_oidc or jwt_local); \
                     set AUTH_TYPE, or remove it for meinGPT mode (MEINGPT_ORG_ID)"
                )
            );
            assert_eq!(setting(&[(name, "x")]), name);
        }
    }

    #[test]
    fn a_jwks_url_with_several_organizations_is_refused() {
        assert_eq!(
            message(&[
                ("MEINGPT_ORG_ID", "a,b"),
                ("MEINGPT_JWKS_URL", "https://x.example/k")
            ]),
            "MEINGPT_JWKS_URL is invalid: has no effect with 2 organizations in MEINGPT_ORG_ID \
             (each one's JWKS URL is derived from MEINGPT_ISSUER); remove it, or set one organization"
        );
    }

    #[test]
    fn a_decode_key_with_oidc_is_refused() {
        assert_eq!(
            setting(&[
                ("AUTH_TYPE", "jwt_oidc"),
                ("JWT_ISS", "https://id.example"),
                ("JWT_AUD", "a"),
                ("JWT_DECODE_KEY_B64", "c2VjcmV0"),
            ]),
            "JWT_DECODE_KEY_B64"
        );
    }

    #[test]
    fn a_relative_jwks_url_asks_for_an_absolute_https_url() {
        assert_eq!(
            message(&[("MEINGPT_ORG_ID", "org"), ("MEINGPT_JWKS_URL", "not-a-url")]),
            "MEINGPT_JWKS_URL is invalid: expected an absolute https:// URL such as \
             https://app.meingpt.com (http:// only for loopback hosts), found a relative URL (no scheme)"
        );
    }

    #[test]
    fn the_role_claim_variable_sets_the_role_claim() {
        let empty = from(&[
            ("AUTH_TYPE", "jwt_oidc"),
            ("JWT_ISS", "https://id.example"),
            ("JWT_AUD", "a"),
            ("JWT_ROLE_CLAIM", " "),
        ]);
        assert_eq!(empty.unwrap_err().setting(), "JWT_ROLE_CLAIM");
        let auth = from(&[
            ("AUTH_TYPE", "jwt_oidc"),
            ("JWT_ISS", "https://id.example"),
            ("JWT_AUD", "a"),
            ("JWT_ROLE_CLAIM", "role"),
        ]);
        assert!(auth.is_ok());
    }

    #[test]
    fn a_key_in_either_base64_alphabet_with_or_without_padding_decodes() {
        use base64::engine::general_purpose::{STANDARD_NO_PAD, URL_SAFE, URL_SAFE_NO_PAD};
        // Bytes whose base64 has both '+'/'/' (standard) and '-'/'_' (URL-safe).
        let bytes: Vec<u8> = (0..=255u8).rev().collect();
        for engine in [STANDARD, STANDARD_NO_PAD, URL_SAFE, URL_SAFE_NO_PAD] {
            assert_eq!(decode_base64(&engine.encode(&bytes)).unwrap(), bytes);
        }
        let err = decode_base64("%%%").unwrap_err().to_string();
        assert_eq!(
            err,
            "JWT_DECODE_KEY_B64 is invalid: it is not base64: expected standard or URL-safe \
             base64 (padding optional) of a PEM public key, or of the secret for HS*"
        );
        let pem = decode_base64("-----BEGINPUBLICKEY-----MFkw").unwrap_err();
        assert!(
            pem.to_string().contains("found the PEM text itself"),
            "{pem}"
        );
    }

    #[test]
    fn meingpt_errors_name_the_variable() {
        assert_eq!(
            setting(&[
                ("MEINGPT_ORG_ID", "org"),
                ("MEINGPT_ISSUER", "http://evil.example")
            ]),
            "MEINGPT_ISSUER"
        );
        assert_eq!(
            setting(&[("MEINGPT_ORG_ID", "org"), ("MEINGPT_JWKS_URL", "nope")]),
            "MEINGPT_JWKS_URL"
        );
        assert_eq!(setting(&[("MEINGPT_ORG_ID", "a b")]), "MEINGPT_ORG_ID");
        assert_eq!(setting(&[("MEINGPT_ORG_ID", " ")]), "MEINGPT_ORG_ID");
        assert_eq!(setting(&[("MEINGPT_ORG_ID", ",")]), "MEINGPT_ORG_ID");
        assert_eq!(
            setting(&[
                ("MEINGPT_ORG_ID", "a,b"),
                ("MEINGPT_JWKS_URL", "https://x.example/k")
            ]),
            "MEINGPT_JWKS_URL"
        );
    }

    #[test]
    fn a_full_meingpt_configuration_builds_with_several_organizations() {
        let auth = from(&[
            ("MEINGPT_ORG_ID", "org-a, org-b"),
            ("MEINGPT_ISSUER", "http://127.0.0.1:4000"),
        ])
        .unwrap();
        assert_eq!(auth.realm(), "meingpt");
    }

    #[test]
    fn auth_type_errors_name_the_variable() {
        assert_eq!(setting(&[("AUTH_TYPE", "jwt_magic")]), "AUTH_TYPE");
        assert_eq!(
            setting(&[("AUTH_TYPE", "jwt_oidc"), ("MEINGPT_ORG_ID", "org")]),
            "JWT_ISS"
        );
        assert_eq!(setting(&[("AUTH_TYPE", "jwt_oidc")]), "JWT_ISS");
        assert_eq!(
            setting(&[("AUTH_TYPE", "jwt_oidc"), ("JWT_ISS", "https://id.example")]),
            "JWT_AUD"
        );
        assert_eq!(
            setting(&[
                ("AUTH_TYPE", "jwt_oidc"),
                ("JWT_ISS", "http://id.example"),
                ("JWT_AUD", "a")
            ]),
            "JWT_ISS"
        );
        let local = [
            ("AUTH_TYPE", "jwt_local"),
            ("JWT_ISS", "me"),
            ("JWT_AUD", "a"),
        ];
        assert_eq!(setting(&local), "JWT_ALG");
        let with = |extra: &[(&'static str, &'static str)]| {
            let mut vars = local.to_vec();
            vars.extend_from_slice(extra);
            setting(&vars)
        };
        assert_eq!(with(&[("JWT_ALG", "none")]), "JWT_ALG");
        assert_eq!(with(&[("JWT_ALG", "RS256")]), "JWT_DECODE_KEY_B64");
        assert_eq!(
            with(&[("JWT_ALG", "RS256"), ("JWT_DECODE_KEY_B64", "%%%")]),
            "JWT_DECODE_KEY_B64"
        );
        // base64 of "not a key"
        assert_eq!(
            with(&[("JWT_ALG", "RS256"), ("JWT_DECODE_KEY_B64", "bm90IGEga2V5")]),
            "JWT_DECODE_KEY_B64"
        );
        // an HS256 secret that is too short
        assert_eq!(
            with(&[("JWT_ALG", "HS256"), ("JWT_DECODE_KEY_B64", "c2hvcnQ=")]),
            "JWT_DECODE_KEY_B64"
        );
    }

    #[test]
    fn errors_never_echo_the_key() {
        let err = from(&[
            ("AUTH_TYPE", "jwt_local"),
            ("JWT_ISS", "me"),
            ("JWT_AUD", "a"),
            ("JWT_ALG", "HS256"),
            ("JWT_DECODE_KEY_B64", "c2VjcmV0LXZhbHVl"),
        ])
        .unwrap_err()
        .to_string();
        assert!(
            !err.contains("c2VjcmV0LXZhbHVl") && !err.contains("secret-value"),
            "{err}"
        );
    }

    #[test]
    fn meingpt_and_another_issuer_together_configure_both() {
        let secret = STANDARD.encode([7u8; 32]);
        for other in [
            vec![
                ("AUTH_TYPE", "jwt_oidc"),
                ("JWT_ISS", "https://login.example.com/tenant/v2.0"),
                ("JWT_AUD", "api://x"),
            ],
            vec![
                ("AUTH_TYPE", "jwt_local"),
                ("JWT_ISS", "https://opengpts.example"),
                ("JWT_AUD", "my-api"),
                ("JWT_ALG", "HS256"),
                ("JWT_DECODE_KEY_B64", &secret),
            ],
        ] {
            let mut vars = vec![
                ("MEINGPT_ORG_ID", "org-a,org-b"),
                ("MEINGPT_ISSUER", "https://meingpt.example.com/"),
            ];
            vars.extend(other.iter().copied());
            let auth = from(&vars).unwrap();
            assert_eq!(
                auth.issuers(),
                ["https://meingpt.example.com", other[1].1],
                "{other:?}"
            );
        }
    }

    #[test]
    fn with_both_issuers_each_error_names_its_own_variable() {
        let oidc = [
            ("AUTH_TYPE", "jwt_oidc"),
            ("JWT_ISS", "https://id.example.com"),
            ("JWT_AUD", "api"),
        ];
        let with = |extra: &[(&'static str, &'static str)]| {
            let mut vars = oidc.to_vec();
            vars.extend_from_slice(extra);
            setting(&vars)
        };
        assert_eq!(with(&[("MEINGPT_ORG_ID", "a b")]), "MEINGPT_ORG_ID");
        assert_eq!(
            with(&[("MEINGPT_ISSUER", "https://meingpt.example.com")]),
            "MEINGPT_ISSUER"
        );
        assert_eq!(
            with(&[
                ("MEINGPT_ORG_ID", "org"),
                ("MEINGPT_ISSUER", "http://meingpt.example.com")
            ]),
            "MEINGPT_ISSUER"
        );
        assert_eq!(
            with(&[("MEINGPT_ORG_ID", "org"), ("JWT_ALG", "HS256")]),
            "JWT_ALG"
        );
        // One issuer configured twice: the second names it.
        assert_eq!(
            message(&[
                ("MEINGPT_ORG_ID", "org"),
                ("MEINGPT_ISSUER", "https://id.example.com"),
                ("AUTH_TYPE", "jwt_oidc"),
                ("JWT_ISS", "https://id.example.com"),
                ("JWT_AUD", "api"),
            ]),
            "JWT_ISS is invalid: another configuration already has this issuer; \
             one issuer takes one configuration (give it several audiences instead)"
        );
    }

    const RESOURCE: &str = "https://mcp.example.com/mcp";

    fn with_resource(extra: &[(&'static str, &'static str)]) -> Result<MeinGptAuth, ConfigError> {
        let mut vars = vec![
            ("MEINGPT_ORG_ID", "org"),
            ("AUTH_TYPE", "jwt_oidc"),
            ("JWT_ISS", "https://login.example.com/v2.0"),
            ("MCP_RESOURCE_URL", RESOURCE),
        ];
        vars.extend_from_slice(extra);
        from(&vars)
    }

    #[test]
    fn mcp_resource_url_publishes_the_resource_and_binds_the_other_issuer_without_jwt_aud() {
        let auth = with_resource(&[("MCP_SCOPES", "mcp:tools, mcp:admin files:read")]).unwrap();
        let metadata = auth.resource_metadata().unwrap();
        assert_eq!(metadata.resource(), RESOURCE);
        assert_eq!(
            metadata.scopes_supported(),
            ["mcp:tools", "mcp:admin", "files:read"]
        );
        let document: serde_json::Value = serde_json::from_slice(metadata.document()).unwrap();
        assert_eq!(
            document["authorization_servers"],
            serde_json::json!(["https://login.example.com/v2.0", "https://app.meingpt.com"])
        );
        let issuers = &auth.verifiers().issuers;
        assert_eq!(issuers[0].audiences[0].0, "org");
        assert_eq!(issuers[1].audiences.len(), 1);
        assert_eq!(issuers[1].audiences[0].0, RESOURCE);
    }

    #[test]
    fn jwt_aud_beside_mcp_resource_url_keeps_its_audiences() {
        let auth = with_resource(&[("JWT_AUD", "api://tools")]).unwrap();
        assert_eq!(auth.verifiers().issuers[1].audiences[0].0, "api://tools");
        assert!(auth.resource_metadata().is_some());
    }

    #[test]
    fn mcp_variables_that_cannot_work_name_themselves() {
        assert_eq!(
            message(&[("MEINGPT_ORG_ID", "org"), ("MCP_SCOPES", "mcp:tools")]),
            "MCP_SCOPES is invalid: has no effect without MCP_RESOURCE_URL; set MCP_RESOURCE_URL \
             to the URL MCP clients use, such as https://mcp.example.com/mcp"
        );
        assert_eq!(
            message(&[
                ("MEINGPT_ORG_ID", "org"),
                ("MCP_RESOURCE_URL", "http://mcp.example.com")
            ]),
            "MCP_RESOURCE_URL is invalid: plain http:// is only allowed for loopback hosts; use \
             https://"
        );
        assert_eq!(
            setting(&[("MEINGPT_ORG_ID", "org"), ("MCP_RESOURCE_URL", " ")]),
            "MCP_RESOURCE_URL"
        );
        assert_eq!(
            with_resource(&[("MCP_SCOPES", "mcp:\"tools")])
                .unwrap_err()
                .setting(),
            "MCP_SCOPES"
        );
        // jwt_oidc without JWT_AUD and without a resource: the audience is
        // still required.
        assert_eq!(
            message(&[
                ("AUTH_TYPE", "jwt_oidc"),
                ("JWT_ISS", "https://id.example.com")
            ]),
            "JWT_AUD is not set: the audience(s) (`aud`) tokens must be issued for, comma \
             separated; or set MCP_RESOURCE_URL to accept tokens issued for that resource"
        );
        assert!(ENV_VARIABLES.contains(&"MCP_RESOURCE_URL"));
        assert!(ENV_VARIABLES.contains(&"MCP_SCOPES"));
    }

    #[test]
    fn an_hmac_secret_configuration_builds() {
        let secret = STANDARD.encode([7u8; 32]);
        let auth = from(&[
            ("AUTH_TYPE", "jwt_local"),
            ("JWT_ISS", "https://opengpts.example"),
            ("JWT_AUD", "a,b"),
            ("JWT_ALG", "HS256"),
            ("JWT_DECODE_KEY_B64", &secret),
        ]);
        assert!(auth.is_ok());
    }

    /// A file under the temporary directory holding `contents`.
    fn temp_file(name: &str, contents: &[u8]) -> std::path::PathBuf {
        let dir = std::env::temp_dir().join(format!("meingpt-auth-env-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join(name);
        std::fs::write(&path, contents).unwrap();
        path
    }

    fn test_ca_pem() -> String {
        let key = rcgen::KeyPair::generate().unwrap();
        let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        params.self_signed(&key).unwrap().pem()
    }

    fn with_ca_file(path: &str) -> Result<MeinGptAuth, ConfigError> {
        from(&[("MEINGPT_ORG_ID", "org"), ("JWKS_CA_FILE", path)])
    }

    #[test]
    fn a_ca_file_of_root_certificates_is_trusted_besides_the_platform_roots() {
        let bundle = format!("{}{}", test_ca_pem(), test_ca_pem());
        let path = temp_file("bundle.pem", bundle.as_bytes());
        let builders = builders_from(&|name: &str| match name {
            "MEINGPT_ORG_ID" => Some("org".into()),
            _ => None,
        })
        .unwrap();
        assert!(
            builders
                .iter()
                .all(|(builder, _)| builder.jwks.extra_roots.is_empty())
        );
        let roots = ca_file(|name| match name {
            "MEINGPT_ORG_ID" => Some("org".into()),
            "JWKS_CA_FILE" => Some(path.to_str().unwrap().into()),
            _ => None,
        })
        .unwrap();
        assert_eq!(roots.len(), 2);
        with_ca_file(path.to_str().unwrap()).unwrap();
    }

    #[test]
    fn a_missing_ca_file_is_refused_naming_the_variable() {
        assert_eq!(
            with_ca_file("/nonexistent/meingpt/ca.pem")
                .unwrap_err()
                .to_string(),
            "JWKS_CA_FILE is invalid: /nonexistent/meingpt/ca.pem does not exist; set it to \
             the path of a PEM file of root certificates"
        );
    }

    #[test]
    fn an_unreadable_ca_file_is_refused_with_the_reason() {
        let dir = std::env::temp_dir();
        let path = dir.to_str().unwrap();
        let message = with_ca_file(path).unwrap_err().to_string();
        assert!(
            message.starts_with(&format!("JWKS_CA_FILE is invalid: cannot read {path}: ")),
            "{message}"
        );
        assert_eq!(message.lines().count(), 1, "{message}");
    }

    #[test]
    fn a_ca_file_without_a_certificate_is_refused() {
        let key = rcgen::KeyPair::generate().unwrap().serialize_pem();
        let path = temp_file("key-only.pem", key.as_bytes());
        let path = path.to_str().unwrap();
        assert_eq!(
            with_ca_file(path).unwrap_err().to_string(),
            format!(
                "JWKS_CA_FILE is invalid: {path} holds no certificate \
                 (no -----BEGIN CERTIFICATE----- block)"
            )
        );
    }

    #[test]
    fn a_ca_file_whose_certificate_block_is_not_base64_is_refused() {
        let path = temp_file(
            "not-base64.pem",
            b"-----BEGIN CERTIFICATE-----\n%%%%\n-----END CERTIFICATE-----\n",
        );
        let path = path.to_str().unwrap();
        assert_eq!(
            with_ca_file(path).unwrap_err().to_string(),
            format!(
                "JWKS_CA_FILE is invalid: {path} is not a PEM bundle: \
                 a CERTIFICATE block does not decode"
            )
        );
    }

    #[test]
    fn a_malformed_certificate_in_the_ca_file_is_refused_naming_which_one() {
        let bundle = format!(
            "{}-----BEGIN CERTIFICATE-----\nAAECAwQFBgcICQ==\n-----END CERTIFICATE-----\n",
            test_ca_pem()
        );
        let path = temp_file("malformed.pem", bundle.as_bytes());
        let path = path.to_str().unwrap();
        let message = with_ca_file(path).unwrap_err().to_string();
        assert_eq!(
            message,
            format!(
                "JWKS_CA_FILE is invalid: certificate 2 of 2 in {path} is not a valid X.509 \
                 certificate (BadEncoding)"
            )
        );
    }

    #[test]
    fn a_ca_file_with_a_static_key_alone_is_refused_as_without_effect() {
        let path = temp_file("unused.pem", test_ca_pem().as_bytes());
        let message = message(&[
            ("AUTH_TYPE", "jwt_local"),
            ("JWT_ISS", "https://opengpts.example"),
            ("JWT_AUD", "api"),
            ("JWT_ALG", "HS256"),
            (
                "JWT_DECODE_KEY_B64",
                "c2VjcmV0LXNlY3JldC1zZWNyZXQtc2VjcmV0LXNlY3JldA==",
            ),
            ("JWKS_CA_FILE", path.to_str().unwrap()),
        ]);
        assert_eq!(
            message,
            "JWKS_CA_FILE is invalid: has no effect with AUTH_TYPE=jwt_local (its key is \
             configured, nothing is fetched); remove it"
        );
    }

    #[test]
    fn an_empty_ca_file_variable_is_refused() {
        assert_eq!(
            with_ca_file("  ").unwrap_err().to_string(),
            "JWKS_CA_FILE is invalid: it is set but empty"
        );
    }
}

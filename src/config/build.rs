//! [`MeinGptAuthBuilder::build`] and
//! [`MeinGptAuth::from_issuers`](crate::MeinGptAuth::from_issuers): the
//! checks every mode shares, then what each mode settles (issuer,
//! algorithms, key source, audiences), then the authenticator: one verifier
//! per issuer, the request-level settings of the first configuration.

use std::sync::Arc;
use std::time::Duration;

use jsonwebtoken::Algorithm;

use super::ConfigError;
use super::builder::{MeinGptAuthBuilder, Mode, StaticKey};
use crate::auth::MeinGptAuth;
use crate::claims::ClaimRules;
use crate::clock::SharedClock;
use crate::jwks::{JwksCache, Location, SourceConfig, SourceId};
use crate::keys::{self, ASYMMETRIC};
use crate::resource::{ProtectedResource, ResourceError, ResourceMetadata};
use crate::url_policy::{UrlError, checked_url};
use crate::verify::{Keys, VerifiedTokens, Verifier, VerifierSettings, Verifiers};

/// The authenticator of `builders`, one verifier per issuer, the
/// request-level settings of the first; an error tells which builder (by
/// index) it is about.
pub(super) fn build_issuers(
    builders: Vec<MeinGptAuthBuilder>,
) -> Result<MeinGptAuth, (usize, ConfigError)> {
    let Some(first) = builders.first() else {
        return Err((0, ConfigError::Missing { setting: "issuers" }));
    };
    first.check_request().map_err(|error| (0, error))?;
    let clock = SharedClock(first.clock.clone());
    let max_token_size = first.max_token_size;
    let verified = (first.verified_tokens > 0 && first.verified_bytes > 0)
        .then(|| VerifiedTokens::new(first.verified_tokens, first.verified_bytes));
    let sources = first.sources.clone();
    let realm = first.realm.clone();
    let resource = first.protected_resource.clone();
    let identifier = resource
        .as_ref()
        .map(ProtectedResource::identifier)
        .transpose()
        .map_err(|error| (0, resource_error(error)))?;
    let mut issuers: Vec<Verifier> = Vec::with_capacity(builders.len());
    for (index, builder) in builders.into_iter().enumerate() {
        if index > 0 && builder.protected_resource.is_some() {
            return Err((
                index,
                ConfigError::invalid(
                    "protected_resource",
                    "the protected resource is a setting of the request, not of an issuer: \
                     set it on the first configuration",
                ),
            ));
        }
        let verifier = builder
            .verifier(&clock, max_token_size, identifier.as_deref())
            .map_err(|error| (index, error))?;
        if issuers.iter().any(|other| other.issuer == verifier.issuer) {
            return Err((
                index,
                ConfigError::invalid(
                    "issuer",
                    "another configuration already has this issuer; one issuer takes one \
                     configuration (give it several audiences instead)",
                ),
            ));
        }
        issuers.push(verifier);
    }
    let kinds: Vec<(&str, bool)> = issuers
        .iter()
        .map(|verifier| (verifier.issuer.as_str(), verifier.is_oidc()))
        .collect();
    let metadata = resource
        .map(|resource| ResourceMetadata::new(&resource, &kinds))
        .transpose()
        .map_err(|error| (0, resource_error(error)))?;
    let verifiers = Verifiers {
        issuers,
        max_token_size,
        verified,
    };
    Ok(MeinGptAuth::from_parts(verifiers, sources, realm, metadata))
}

/// A protected resource the configuration refuses, naming the setting.
fn resource_error(error: ResourceError) -> ConfigError {
    ConfigError::invalid(error.setting, error.reason)
}

impl MeinGptAuthBuilder {
    /// Checks the configuration and builds the authenticator.
    pub fn build(self) -> Result<MeinGptAuth, ConfigError> {
        build_issuers(vec![self]).map_err(|(_, error)| error)
    }

    /// The issuer this configuration accepts, checked: its keys, audiences
    /// and claim rules; the request-level settings come from the caller,
    /// `resource` (the protected resource's identifier) among them.
    fn verifier(
        mut self,
        clock: &SharedClock,
        max_token_size: usize,
        resource: Option<&str>,
    ) -> Result<Verifier, ConfigError> {
        self.check_issuer()?;
        if self.resource_audience {
            self.audiences = vec![self.bound_audience(resource)?];
        }
        let KeySetup {
            issuer,
            algorithms,
            keys,
            audiences,
        } = match &self.mode {
            Mode::MeinGpt => self.meingpt_keys(clock)?,
            Mode::Oidc => self.oidc_keys(clock)?,
            Mode::Static(key) => self.static_keys(key)?,
        };
        let default_role_claim = match self.mode {
            Mode::MeinGpt => "role",
            _ => "roles",
        };
        let rules = ClaimRules {
            role_claim: self
                .role_claim
                .unwrap_or_else(|| default_role_claim.to_owned()),
            roles_case_insensitive: self.roles_case_insensitive,
            roles_comma_separated: self.roles_comma_separated,
            email_fallback: self.email_fallback,
            meingpt: matches!(self.mode, Mode::MeinGpt),
        };
        let settings = VerifierSettings {
            algorithms,
            issuer,
            audiences,
            leeway: self.leeway,
            max_token_size,
            rules,
            max_auth_age: self.max_auth_age,
            profile: self.profile,
        };
        Ok(Verifier::new(settings, keys, clock.clone()))
    }

    /// Audience binding (RFC 8707): the one audience is the protected
    /// resource's identifier.
    fn bound_audience(&self, resource: Option<&str>) -> Result<String, ConfigError> {
        if let Mode::MeinGpt = self.mode {
            return Err(ConfigError::invalid(
                "resource_audience",
                "meinGPT issues its tokens for the organization; bind an OpenID Connect or \
                 static-key issuer to the resource",
            ));
        }
        if !self.audiences.is_empty() {
            return Err(ConfigError::invalid(
                "audience",
                "has no effect with resource_audience, which accepts tokens issued for the \
                 protected resource only; remove one of them",
            ));
        }
        resource.map(str::to_owned).ok_or_else(|| {
            ConfigError::invalid(
                "resource_audience",
                "needs a protected resource: set protected_resource on the first \
                 configuration (MCP_RESOURCE_URL)",
            )
        })
    }

    /// The settings of the request: token sources, realm, token size.
    fn check_request(&self) -> Result<(), ConfigError> {
        if !(1..=256).contains(&self.realm.len())
            || !self
                .realm
                .bytes()
                .all(|b| (b' '..=b'~').contains(&b) && b != b'"' && b != b'\\')
        {
            return Err(ConfigError::invalid(
                "realm",
                "a realm is 1-256 printable ASCII characters without quotes or backslashes",
            ));
        }
        if self.sources.is_empty() {
            return Err(ConfigError::invalid(
                "token_sources",
                "at least one token source is needed",
            ));
        }
        if self.max_token_size < 64 {
            return Err(ConfigError::invalid("max_token_size", "at least 64 bytes"));
        }
        Ok(())
    }

    /// The settings of one issuer.
    fn check_issuer(&self) -> Result<(), ConfigError> {
        if self.leeway > Duration::from_secs(300) {
            return Err(ConfigError::invalid("leeway", "at most 5 minutes"));
        }
        if self.jwks.timeout.is_zero() {
            return Err(ConfigError::invalid("jwks_timeout", "must be above zero"));
        }
        if self.role_claim.as_deref().is_some_and(str::is_empty) {
            return Err(ConfigError::invalid("role_claim", "must not be empty"));
        }
        if self.audiences.iter().any(|aud| aud.trim().is_empty()) {
            return Err(ConfigError::invalid("audience", "must not be empty"));
        }
        if self
            .profile
            .token_type
            .as_deref()
            .is_some_and(str::is_empty)
        {
            return Err(ConfigError::invalid(
                "require_token_type",
                "must not be empty",
            ));
        }
        if self.profile.authorized_parties.iter().any(String::is_empty) {
            return Err(ConfigError::invalid(
                "authorized_party",
                "must not be empty",
            ));
        }
        if self.profile.max_lifetime.is_some_and(|max| max.is_zero()) {
            return Err(ConfigError::invalid(
                "max_token_lifetime",
                "must be above zero",
            ));
        }
        Ok(())
    }

    fn jwks_cache(
        &self,
        locations: Vec<SourceConfig>,
        algorithms: Option<Vec<Algorithm>>,
        clock: &SharedClock,
    ) -> Result<Keys, ConfigError> {
        let cache = JwksCache::new(locations, algorithms, self.jwks.clone(), clock.clone())
            .map_err(|e| ConfigError::invalid("jwks_url", format!("HTTP client: {e}")))?;
        Ok(Keys::Jwks(Arc::new(cache)))
    }

    fn meingpt_keys(&self, clock: &SharedClock) -> Result<KeySetup, ConfigError> {
        if self.audiences.is_empty() {
            return Err(ConfigError::Missing {
                setting: "organization",
            });
        }
        for organization in &self.audiences {
            if !organization
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
            {
                return Err(ConfigError::invalid(
                    "organization",
                    "an organization id has only letters, digits, '-' and '_'",
                ));
            }
        }
        if self
            .algorithms
            .as_ref()
            .is_some_and(|algs| algs.as_slice() != [Algorithm::RS256])
        {
            return Err(ConfigError::invalid(
                "algorithms",
                "meinGPT signs with RS256 only",
            ));
        }
        let issuer = self.issuer.strip_suffix('/').unwrap_or(&self.issuer);
        let issuer_url = checked_url(issuer).map_err(url_setting("issuer"))?;
        if issuer_url.path() != "/" || issuer_url.query().is_some() {
            return Err(ConfigError::invalid(
                "issuer",
                "the meinGPT issuer is an origin such as https://app.meingpt.com",
            ));
        }
        let locations = match (&self.jwks_url, self.audiences.as_slice()) {
            (Some(url), [_]) => vec![SourceConfig {
                location: Location::Jwks(checked_url(url).map_err(url_setting("jwks_url"))?),
                setting: "MEINGPT_JWKS_URL / `jwks_url`",
            }],
            (Some(_), _) => {
                return Err(ConfigError::invalid(
                    "jwks_url",
                    "a JWKS URL override serves one organization only",
                ));
            }
            (None, organizations) => organizations
                .iter()
                .map(|org| {
                    checked_url(&format!("{issuer}/api/custom-apps/v1/jwks/{org}")).map(|url| {
                        SourceConfig {
                            location: Location::Jwks(url),
                            setting: "MEINGPT_ORG_ID / `organization`",
                        }
                    })
                })
                .collect::<Result<_, _>>()
                .map_err(url_setting("url"))?,
        };
        let audiences = self
            .audiences
            .iter()
            .enumerate()
            .map(|(index, org)| (org.clone(), SourceId(index)))
            .collect();
        let keys = self.jwks_cache(locations, Some(vec![Algorithm::RS256]), clock)?;
        Ok(KeySetup {
            issuer: issuer.to_owned(),
            algorithms: vec![Algorithm::RS256],
            keys,
            audiences,
        })
    }

    fn oidc_keys(&self, clock: &SharedClock) -> Result<KeySetup, ConfigError> {
        let audiences = self.required_audiences()?;
        let issuer_url = checked_url(&self.issuer).map_err(url_setting("issuer"))?;
        let algorithms = match &self.algorithms {
            Some(algs) if algs.is_empty() || algs.iter().any(|alg| !ASYMMETRIC.contains(alg)) => {
                return Err(ConfigError::invalid(
                    "algorithms",
                    "keys from a JWKS take asymmetric algorithms only (RS*, PS*, ES256, ES384, EdDSA)",
                ));
            }
            configured => configured.clone(),
        };
        let discovery = format!(
            "{}/.well-known/openid-configuration",
            issuer_url.as_str().trim_end_matches('/')
        );
        let location = match &self.jwks_url {
            // A known JWKS URL skips discovery.
            Some(url) => SourceConfig {
                location: Location::Jwks(checked_url(url).map_err(url_setting("jwks_url"))?),
                setting: "`jwks_url`",
            },
            None => SourceConfig {
                location: Location::Discovery {
                    issuer: self.issuer.clone(),
                    url: checked_url(&discovery).map_err(url_setting("url"))?,
                },
                setting: "JWT_ISS / `MeinGptAuth::oidc`",
            },
        };
        let precheck = algorithms.clone().unwrap_or_else(|| ASYMMETRIC.to_vec());
        let keys = self.jwks_cache(vec![location], algorithms, clock)?;
        Ok(KeySetup {
            issuer: self.issuer.clone(),
            algorithms: precheck,
            keys,
            audiences,
        })
    }

    fn static_keys(&self, key: &StaticKey) -> Result<KeySetup, ConfigError> {
        let audiences = self.required_audiences()?;
        if self.issuer.trim().is_empty() {
            return Err(ConfigError::Missing { setting: "issuer" });
        }
        let verifying = keys::from_config(key.algorithm, &key.bytes)
            .map_err(|error| ConfigError::invalid("static_key", error.reason))?;
        Ok(KeySetup {
            issuer: self.issuer.clone(),
            algorithms: vec![key.algorithm],
            keys: Keys::Static(Arc::new(verifying)),
            audiences,
        })
    }

    fn required_audiences(&self) -> Result<Vec<(String, SourceId)>, ConfigError> {
        if self.audiences.is_empty() {
            return Err(ConfigError::Missing {
                setting: "audience",
            });
        }
        Ok(self
            .audiences
            .iter()
            .map(|aud| (aud.clone(), SourceId(0)))
            .collect())
    }
}

/// What the mode settles: the issuer, the algorithms checked before any key
/// is looked at, where keys come from, and the audiences with their key
/// source.
struct KeySetup {
    issuer: String,
    algorithms: Vec<Algorithm>,
    keys: Keys,
    audiences: Vec<(String, SourceId)>,
}

/// A URL setting the policy refuses, as the configuration error that
/// names `setting`.
fn url_setting(setting: &'static str) -> impl Fn(UrlError) -> ConfigError {
    move |error| ConfigError::invalid(setting, error.reason)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn jwks_url_is_derived_from_issuer_and_organization() {
        let auth = MeinGptAuth::builder()
            .organization("clx123")
            .issuer("https://meingpt.example.com/")
            .build()
            .unwrap();
        let printed = format!("{:?}", auth.verifier().keys);
        assert!(printed.contains("https://meingpt.example.com/api/custom-apps/v1/jwks/clx123"));
        assert_eq!(auth.verifier().issuer, "https://meingpt.example.com");
    }

    #[test]
    fn bad_settings_name_themselves() {
        let err = MeinGptAuth::builder().build().unwrap_err();
        assert_eq!(err.to_string(), "organization is not set");
        let err = MeinGptAuth::builder()
            .organizations(["a", "b"])
            .jwks_url("https://x.example/jwks")
            .build()
            .unwrap_err();
        assert_eq!(err.setting(), "jwks_url");
        let err = MeinGptAuth::oidc("https://id.example.com")
            .build()
            .unwrap_err();
        assert_eq!(err.to_string(), "audience is not set");
        let err = MeinGptAuth::oidc("https://id.example.com")
            .audience("api")
            .algorithms([Algorithm::HS256])
            .build()
            .unwrap_err();
        assert_eq!(err.setting(), "algorithms");
        let err = MeinGptAuth::oidc("http://id.example.com")
            .audience("api")
            .build()
            .unwrap_err();
        assert_eq!(err.setting(), "issuer");
        let err = MeinGptAuth::builder()
            .organization("a/b")
            .build()
            .unwrap_err();
        assert_eq!(err.setting(), "organization");
        let err = MeinGptAuth::builder()
            .organization("org")
            .issuer("http://meingpt.example.com")
            .build()
            .unwrap_err();
        assert_eq!(err.setting(), "issuer");
        let err = MeinGptAuth::builder()
            .organization("org")
            .realm("a\"b")
            .build()
            .unwrap_err();
        assert_eq!(err.setting(), "realm");
    }
}

//! The authenticator, [`MeinGptAuth`]: the type and everything it does at
//! run time (find and verify tokens, preload keys, answer refusals).
//!
//! Two groups of its methods live with what they make, because they need
//! modules that build on this one:
//!
//! - **constructors** ([`builder`](MeinGptAuth::builder),
//!   [`oidc`](MeinGptAuth::oidc), [`static_key`](MeinGptAuth::static_key),
//!   [`from_issuers`](MeinGptAuth::from_issuers),
//!   [`from_env`](MeinGptAuth::from_env)) in [`config`](crate::config)
//!   (`src/config/mod.rs`), beside the builder they return or check;
//! - **layers** ([`layer`](MeinGptAuth::layer),
//!   [`optional_layer`](MeinGptAuth::optional_layer),
//!   [`attach_user`](MeinGptAuth::attach_user)) in
//!   [`layer`](crate::layer), beside [`AuthLayer`](crate::AuthLayer).

use std::fmt;
use std::sync::Arc;

use http::{HeaderMap, Response};

use crate::claims::MeinGptUser;
use crate::error::{AuthError, Challenge};
use crate::jwks::{Failure, KeysError, SourceId, Waited};
use crate::resource::ResourceMetadata;
use crate::token::{self, TokenSource};
use crate::verify::{Attempt, Keys, Verifiers};

/// A configured authenticator: verifies tokens and makes the layers.
///
/// Cheap to clone; every clone shares one key cache. Made by the
/// constructors of [`config`](crate::config); its layers come from
/// [`layer`](Self::layer) and [`optional_layer`](Self::optional_layer)
/// (`src/config/mod.rs` and `src/layer.rs`); everything else is here.
///
/// ```
/// use meingpt_auth::MeinGptAuth;
///
/// let auth = MeinGptAuth::builder()
///     .organization("clx0987654321")
///     .build()
///     .unwrap();
/// let layer = auth.layer();
/// # let _ = layer;
/// ```
#[derive(Clone)]
pub struct MeinGptAuth {
    inner: Arc<Inner>,
}

struct Inner {
    /// Shared with every authenticator made by
    /// [`with_token_sources`](MeinGptAuth::with_token_sources).
    verifiers: Arc<Verifiers>,
    sources: Vec<TokenSource>,
    realm: String,
    /// The protected resource: its metadata, named in every challenge.
    resource: Option<ResourceMetadata>,
}

impl fmt::Debug for MeinGptAuth {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MeinGptAuth")
            .field("issuers", &self.issuers())
            .field("sources", &self.inner.sources)
            .field("realm", &self.inner.realm)
            .field("resource", &self.inner.resource)
            .finish_non_exhaustive()
    }
}

impl MeinGptAuth {
    /// The authenticator of a checked configuration: `verifiers` check the
    /// tokens found at `sources`; rejections name `realm` and the
    /// `resource`'s metadata.
    pub(crate) fn from_parts(
        verifiers: Verifiers,
        sources: Vec<TokenSource>,
        realm: String,
        resource: Option<ResourceMetadata>,
    ) -> Self {
        Self {
            inner: Arc::new(Inner {
                verifiers: Arc::new(verifiers),
                sources,
                realm,
                resource,
            }),
        }
    }

    /// The same issuers, keys and verified-token cache, finding the token
    /// at `sources` (in this order) instead of the configured ones.
    ///
    /// For one part of an application that reads the token from elsewhere,
    /// such as a session cookie, without a second key cache: the issuer
    /// sees no extra key fetch. An empty list finds no token in any
    /// request.
    ///
    /// ```
    /// use meingpt_auth::{MeinGptAuth, TokenSource};
    ///
    /// let auth = MeinGptAuth::builder().organization("clx0987654321").build().unwrap();
    /// let from_cookie = auth.with_token_sources(
    ///     [TokenSource::Cookie("__Host-session".into())]
    ///         .into_iter()
    ///         .chain(TokenSource::defaults()),
    /// );
    /// # let _ = from_cookie.layer();
    /// ```
    pub fn with_token_sources(&self, sources: impl IntoIterator<Item = TokenSource>) -> Self {
        Self {
            inner: Arc::new(Inner {
                verifiers: self.inner.verifiers.clone(),
                sources: sources.into_iter().collect(),
                realm: self.inner.realm.clone(),
                resource: self.inner.resource.clone(),
            }),
        }
    }

    /// The places a token is looked for, in order.
    pub fn token_sources(&self) -> &[TokenSource] {
        &self.inner.sources
    }

    /// The configured issuers (`iss`), in configuration order.
    pub(crate) fn issuers(&self) -> Vec<&str> {
        self.inner
            .verifiers
            .issuers
            .iter()
            .map(|verifier| verifier.issuer.as_str())
            .collect()
    }

    /// The protected resource's metadata (RFC 9728), when one is
    /// configured ([`MeinGptAuthBuilder::protected_resource`](crate::MeinGptAuthBuilder::protected_resource),
    /// `MCP_RESOURCE_URL`): serve it with [`ResourceMetadata::router`] or
    /// [`ResourceMetadata::layer`]; every challenge names its URL.
    pub fn resource_metadata(&self) -> Option<&ResourceMetadata> {
        self.inner.resource.as_ref()
    }

    /// Every issuer with whether it is an OpenID Connect issuer.
    pub(crate) fn issuer_kinds(&self) -> Vec<(&str, bool)> {
        self.inner
            .verifiers
            .issuers
            .iter()
            .map(|verifier| (verifier.issuer.as_str(), verifier.is_oidc()))
            .collect()
    }

    /// Fetches the issuers' keys now (and, for OIDC, their discovery
    /// documents) instead of at the first request, so that start-up can
    /// report a misconfigured or unreachable issuer. Without it, such
    /// problems show as `503` answers and a warning in the logs. With
    /// several issuers, every one is tried; the first failure is returned
    /// (and not logged, so that it is printed once), any other is logged.
    pub async fn preload(&self) -> Result<(), KeysError> {
        let mut outcome = Ok(());
        for verifier in &self.inner.verifiers.issuers {
            let failure = match outcome {
                Ok(()) => Failure::Returned,
                Err(_) => Failure::Logged,
            };
            if let Keys::Jwks(jwks) = &verifier.keys
                && let Err(error) = jwks.preload(failure).await
                && outcome.is_ok()
            {
                outcome = Err(error);
            }
        }
        outcome
    }

    /// Verifies one token (a compact JWS), for uses outside HTTP middleware.
    pub async fn verify(&self, token: &str) -> Result<MeinGptUser, AuthError> {
        self.inner.verifiers.verify(token).await
    }

    /// Finds the token in `headers` (by the configured sources) and verifies
    /// it. `Ok(None)` when no token was sent.
    pub async fn authenticate(
        &self,
        headers: &HeaderMap,
    ) -> Result<Option<MeinGptUser>, AuthError> {
        Attempt::wait_for(|waited| self.try_authenticate(headers, waited)).await
    }

    /// [`authenticate`](Self::authenticate) without waiting: the verdict
    /// (also for no token, or a malformed request), or a wait for an
    /// issuer's keys after which to try again with the same `waited`.
    pub(crate) fn try_authenticate(
        &self,
        headers: &HeaderMap,
        waited: &mut Waited,
    ) -> Attempt<Result<Option<MeinGptUser>, AuthError>> {
        match token::extract(&self.inner.sources, headers) {
            Err(error) => Attempt::Done(Err(error.into())),
            Ok(None) => Attempt::Done(Ok(None)),
            Ok(Some(token)) => self
                .inner
                .verifiers
                .try_verify(token.bytes(), |_| token.check(), waited)
                .map(|outcome| outcome.map(Some)),
        }
    }

    /// The realm named in `WWW-Authenticate` challenges.
    pub fn realm(&self) -> &str {
        &self.inner.realm
    }

    /// Renders `error` as this configuration answers it (RFC 6750; the
    /// challenge names the protected resource metadata when one is
    /// configured).
    pub fn reject<B: From<String>>(&self, error: &AuthError) -> Response<B> {
        error.to_response(self.challenge())
    }

    /// The challenge parameters of this configuration: realm and resource
    /// metadata URL.
    pub(crate) fn challenge(&self) -> Challenge<'_> {
        Challenge::new(&self.inner.realm).resource_metadata(
            self.inner
                .resource
                .as_ref()
                .map(ResourceMetadata::metadata_url),
        )
    }

    /// How many verified tokens are remembered now.
    #[cfg_attr(not(feature = "testing"), allow(dead_code))]
    pub(crate) fn verified_token_count(&self) -> u64 {
        self.inner.verifiers.verified_count()
    }

    /// The generation of the key set cached for the first key source of the
    /// first issuer; it changes whenever a new key set is fetched.
    #[cfg_attr(not(feature = "testing"), allow(dead_code))]
    pub(crate) fn key_generation(&self) -> Option<u64> {
        match &self.inner.verifiers.issuers[0].keys {
            Keys::Jwks(jwks) => jwks.current_generation(SourceId(0)),
            Keys::Static(_) => None,
        }
    }

    /// The verifiers, for the verification's own tests.
    #[cfg(test)]
    pub(crate) fn verifiers(&self) -> &Verifiers {
        &self.inner.verifiers
    }

    /// The first issuer's verifier, for the configuration's own tests.
    #[cfg(test)]
    pub(crate) fn verifier(&self) -> &crate::verify::Verifier {
        &self.inner.verifiers.issuers[0]
    }
}

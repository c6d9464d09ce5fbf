//! What an authenticator holds right now, for tests that check caching.

use crate::MeinGptAuth;

/// How many verified tokens `auth` remembers now (see
/// [`verified_token_cache`](crate::MeinGptAuthBuilder::verified_token_cache)).
///
/// A test sees with it that a repeated token was answered from the cache,
/// that a bad token left nothing behind, or that a cache turned off
/// remembers nothing. Clones of `auth` share one cache.
///
/// ```
/// use meingpt_auth::testing::{self, MockIssuer};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// let issuer = MockIssuer::start().await;
/// let auth = issuer.auth().build().unwrap();
/// assert_eq!(testing::verified_token_count(&auth), 0);
///
/// let token = issuer.token().sign();
/// auth.verify(&token).await.unwrap();
/// auth.verify(&token).await.unwrap();
/// assert_eq!(testing::verified_token_count(&auth), 1);
/// # }
/// ```
pub fn verified_token_count(auth: &MeinGptAuth) -> u64 {
    auth.verified_token_count()
}

/// The generation of the key set `auth` holds for its first key source (the
/// first organization, or the OpenID Connect issuer): a number that changes
/// whenever a newly fetched key set replaces it. `None` before the first
/// fetch, and for a static key.
///
/// A test that rotates the issuer's keys waits with it until the
/// authenticator has seen the new key set, instead of sleeping.
///
/// ```
/// use meingpt_auth::testing::{self, MockIssuer};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// let issuer = MockIssuer::start().await;
/// let auth = issuer.auth().build().unwrap();
/// assert_eq!(testing::key_generation(&auth), None);
///
/// auth.preload().await.unwrap();
/// assert!(testing::key_generation(&auth).is_some());
/// # }
/// ```
pub fn key_generation(auth: &MeinGptAuth) -> Option<u64> {
    auth.key_generation()
}

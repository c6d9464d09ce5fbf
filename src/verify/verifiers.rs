//! Verification across the configured issuers: the token's `iss` picks
//! the issuer, and the verified-token cache answers tokens seen before.

use super::*;
use crate::error::InvalidRequest;

/// Checks tokens against the configured issuers, remembering those that
/// verified.
#[derive(Debug)]
pub(crate) struct Verifiers {
    /// At least one; no two with the same `issuer`.
    pub(crate) issuers: Vec<Verifier>,
    pub(crate) max_token_size: usize,
    /// Tokens already verified, by any of the issuers.
    pub(crate) verified: Option<VerifiedTokens>,
}

impl Verifiers {
    /// Verifies `token`, waiting for the issuer's keys if need be.
    pub(crate) async fn verify(&self, token: &str) -> Result<MeinGptUser, AuthError> {
        Attempt::wait_for(|waited| self.try_verify(token.as_bytes(), |_| Ok(token), waited)).await
    }

    /// Verifies `token` without waiting: the verdict, or a wait for the
    /// issuer's keys after which to try again with the same `waited`.
    /// `check` checks the syntax of a token as a request carries it (a
    /// token given as `&str` needs none). A token seen before costs a keyed hash,
    /// a lookup and a comparison of the token (or only the comparison, if
    /// this thread saw it lately), and needs no syntax check: it is byte for
    /// byte one that passed. Its times are checked again by the issuer that
    /// verified it, and it counts only while the key that verified it is
    /// still in its source's current key set. Any other token is checked,
    /// verified and, if it lives long enough, remembered.
    pub(crate) fn try_verify<'t>(
        &self,
        token: &'t [u8],
        check: impl FnOnce(&'t [u8]) -> Result<&'t str, InvalidRequest>,
        waited: &mut Waited,
    ) -> Attempt<Result<MeinGptUser, AuthError>> {
        let cache = self
            .verified
            .as_ref()
            .filter(|_| token.len() <= self.max_token_size);
        // After a wait the verification goes on where it stopped.
        let first_look = waited.is_first_look();
        if let Some(cache) = cache
            && first_look
            && let Some(outcome) = self.remembered(cache, token)
        {
            log_outcome(&outcome);
            return Attempt::Done(outcome);
        }
        let token = match check(token) {
            Ok(token) => token,
            Err(error) => return Attempt::Done(Err(error.into())),
        };
        if cache.is_some() && first_look {
            metrics::verified_token_cache(false);
        }
        // The issuer the token names verifies it.
        let fresh = self
            .issuer_of(token)
            .map_err(Unverified::from)
            .and_then(|issuer| {
                let verified = self.issuers[issuer].try_verify_fresh(token, waited)?;
                Ok((issuer, verified))
            });
        let outcome = match fresh {
            Ok((issuer, verified)) => {
                let user = verified.user.clone();
                if let Some(cache) = cache {
                    cache.remember(issuer, verified);
                }
                Ok(user)
            }
            Err(Unverified::Refused(error)) => Err(error),
            Err(Unverified::Waiting(wait)) => return Attempt::Wait(wait),
        };
        log_outcome(&outcome);
        Attempt::Done(outcome)
    }

    /// The verdict on a remembered token: this thread's recent hits first,
    /// then the shared cache.
    fn remembered(
        &self,
        cache: &VerifiedTokens,
        token: &[u8],
    ) -> Option<Result<MeinGptUser, AuthError>> {
        if let Some(Some(outcome)) = cache.judge_recent(token, |entry| self.judge(entry)) {
            return Some(outcome);
        }
        self.remembered_under(cache, cache.hash(token), token)
    }

    /// The verdict on the shared cache's entry under `hash`, if it holds
    /// `token`; an entry whose key is gone is dropped.
    fn remembered_under(
        &self,
        cache: &VerifiedTokens,
        hash: u64,
        token: &[u8],
    ) -> Option<Result<MeinGptUser, AuthError>> {
        let hit = cache
            .entries
            .get(&hash)
            .filter(|hit| hit.token.as_bytes() == token)?;
        let Some(outcome) = self.judge(&hit) else {
            cache.entries.invalidate(&hash);
            return None;
        };
        if outcome.is_ok() {
            cache.keep_recent(hit);
        }
        Some(outcome)
    }

    /// A remembered verdict, if the key that verified it is still in its
    /// source's key set: the times checked again by the issuer that
    /// verified it. `None` when the key is gone.
    fn judge(&self, entry: &Entry) -> Option<Result<MeinGptUser, AuthError>> {
        let verified = &entry.verified;
        let issuer = &self.issuers[entry.issuer];
        // One reading of the clock for both checks.
        let now = issuer.clock.now();
        if !issuer.still_holds(verified.source, &verified.key, now) {
            return None;
        }
        metrics::verified_token_cache(true);
        Some(
            issuer
                .check_times(&verified.times, now)
                .map(|()| verified.user.clone()),
        )
    }

    /// The index of the issuer whose `iss` the token's (not yet verified)
    /// claims carry, compared exactly; with one issuer, that one (its `iss`
    /// is checked after the signature).
    fn issuer_of(&self, token: &str) -> Result<usize, AuthError> {
        if self.issuers.len() == 1 {
            return Ok(0);
        }
        if token.len() > self.max_token_size {
            return Err(InvalidToken::TooLarge.into());
        }
        let claims = match token.split('.').nth(1) {
            Some(segment) if !segment.is_empty() => decode_segment(segment)?,
            _ => return Err(InvalidToken::Malformed.into()),
        };
        let claims = parse_object(&claims).ok_or(InvalidToken::Malformed)?;
        let Some(Value::String(iss)) = claims.get("iss") else {
            return Err(InvalidToken::UnknownIssuer.into());
        };
        self.issuers
            .iter()
            .position(|issuer| issuer.issuer == *iss)
            .ok_or(InvalidToken::UnknownIssuer.into())
    }

    /// How many tokens are remembered now.
    pub(crate) fn verified_count(&self) -> u64 {
        self.verified.as_ref().map_or(0, VerifiedTokens::count)
    }
}

/// One event per verdict: TRACE when verified, DEBUG with the reason's
/// code when not; never the token.
fn log_outcome(outcome: &Result<MeinGptUser, AuthError>) {
    match outcome {
        Ok(_) => tracing::trace!(target: TARGET, "token verified"),
        Err(AuthError::InvalidToken(reason)) => {
            tracing::debug!(target: TARGET, reason = reason.code(), "token rejected");
        }
        Err(other) => tracing::debug!(target: TARGET, error = %other, "token not verified"),
    }
}

#[cfg(all(test, feature = "testing"))]
mod tests {
    use crate::testing::MockIssuer;

    #[tokio::test]
    async fn a_token_under_a_remembered_tokens_hash_is_not_taken_for_it() {
        let issuer = MockIssuer::start().await;
        let auth = issuer.auth().build().unwrap();
        let verifiers = auth.verifiers();
        let token = issuer.token().sub("user-a").sign();
        let other = issuer.token().sub("user-b").sign();
        verifiers.verify(&token).await.unwrap();
        let cache = verifiers.verified.as_ref().unwrap();
        let hash = cache.hash(token.as_bytes());

        // `other` looked up under `token`'s hash, as if the two collided.
        assert!(
            verifiers
                .remembered_under(cache, hash, other.as_bytes())
                .is_none()
        );
        let user = verifiers
            .remembered_under(cache, hash, token.as_bytes())
            .unwrap()
            .unwrap();
        assert_eq!(user.sub(), "user-a");
    }
}

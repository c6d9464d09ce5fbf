//! Verification across the configured issuers: the token's `iss` picks
//! the issuer, and the verified-token cache answers tokens seen before.

use super::*;

/// What one verified-token cache entry costs beyond the token and the user
/// (the entry itself and the cache's own bookkeeping), in bytes.
const ENTRY_OVERHEAD: usize = 256;

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
    pub(crate) async fn verify(&self, token: &str) -> Result<MeinGptUser, AuthError> {
        let outcome = match &self.verified {
            Some(cache) if token.len() <= self.max_token_size => {
                self.verify_cached(cache, token).await
            }
            _ => self
                .verify_fresh(token)
                .await
                .map(|(_, verified)| verified.user),
        };
        log_outcome(&outcome);
        outcome
    }

    /// The verdict on a token the verified-token cache remembers, without
    /// waiting for anything; `None` when it has to be verified (the cache
    /// is off, the token is not remembered, or its key has changed).
    pub(crate) fn verify_remembered(&self, token: &str) -> Option<Result<MeinGptUser, AuthError>> {
        let cache = self.verified.as_ref()?;
        if token.len() > self.max_token_size {
            return None;
        }
        let outcome = self.remembered(cache, token)?;
        log_outcome(&outcome);
        Some(outcome)
    }

    /// A cache hit whose key is still in its source's key set: the times
    /// checked again by the issuer that verified it.
    fn remembered(
        &self,
        cache: &VerifiedTokens,
        token: &str,
    ) -> Option<Result<MeinGptUser, AuthError>> {
        let hash = cache.hasher.hash_one(token.as_bytes());
        let hit = cache
            .entries
            .get(&hash)
            .filter(|hit| *hit.token == *token)?;
        let verified = &hit.verified;
        let issuer = &self.issuers[hit.issuer];
        if !issuer.still_holds(verified.source, &verified.key) {
            cache.entries.invalidate(&hash);
            return None;
        }
        metrics::verified_token_cache(true);
        Some(
            issuer
                .check_times(&verified.times)
                .map(|()| verified.user.clone()),
        )
    }

    /// A token seen before costs a keyed hash, a lookup and a comparison of
    /// the token; its times are checked again by the issuer that verified
    /// it, and it counts only while the key that verified it is still in
    /// its source's current key set.
    async fn verify_cached(
        &self,
        cache: &VerifiedTokens,
        token: &str,
    ) -> Result<MeinGptUser, AuthError> {
        if let Some(outcome) = self.remembered(cache, token) {
            return outcome;
        }
        let hash = cache.hasher.hash_one(token.as_bytes());
        metrics::verified_token_cache(false);
        let (issuer, verified) = self.verify_fresh(token).await?;
        let user = verified.user.clone();
        if !verified.lifetime.is_zero() {
            let weight = (ENTRY_OVERHEAD + token.len().next_multiple_of(16) + user.weight())
                .min(u32::MAX as usize);
            cache.entries.insert(
                hash,
                Arc::new(Entry {
                    token: token.into(),
                    issuer,
                    verified,
                    weight: weight as u32,
                }),
            );
        }
        Ok(user)
    }

    /// Verifies with the issuer the token names; returns that issuer's
    /// index too.
    async fn verify_fresh(&self, token: &str) -> Result<(usize, Verified), AuthError> {
        let index = self.issuer_of(token)?;
        let verified = self.issuers[index].verify_fresh(token).await?;
        Ok((index, verified))
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

//! A guard on anything about the user.

use super::GuardLayer;
use crate::claims::MeinGptUser;

/// Admits users for whom `predicate` returns `true`.
///
/// ```
/// use meingpt_auth::require_user;
/// // `email()` is the `email` claim only (never a user-chosen `upn` or
/// // `preferred_username`, unless `email_fallback` is configured, which a
/// // guard like this one must not rely on), and none when the issuer says
/// // `email_verified: false`.
/// let company_only = require_user(|user| {
///     user.email().is_some_and(|email| email.ends_with("@example.com"))
/// });
/// # let _ = company_only;
/// ```
pub fn require_user(
    predicate: impl Fn(&MeinGptUser) -> bool + Send + Sync + 'static,
) -> GuardLayer {
    GuardLayer::new(predicate)
}

//! A guard on anything about the user.

use super::GuardLayer;
use crate::claims::MeinGptUser;

/// Admits users for whom `predicate` returns `true`.
///
/// ```
/// use meingpt_auth::require_user;
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

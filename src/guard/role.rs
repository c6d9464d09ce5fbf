//! Guards on the user's role.

use super::GuardLayer;
use crate::claims::Role;

/// Admits users who have `role`; `403 insufficient_scope` otherwise.
///
/// ```
/// use meingpt_auth::{Role, require_role};
/// let admins_only = require_role(Role::Admin);
/// # let _ = admins_only;
/// ```
pub fn require_role(role: Role) -> GuardLayer {
    GuardLayer::named("role", move |user| user.has_role(&role))
}

/// Admits users who have at least one of `roles`.
pub fn require_any_role(roles: impl IntoIterator<Item = Role>) -> GuardLayer {
    let roles: Vec<Role> = roles.into_iter().collect();
    GuardLayer::named("any role", move |user| {
        roles.iter().any(|role| user.has_role(role))
    })
}

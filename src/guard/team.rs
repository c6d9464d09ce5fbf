//! Guards on the user's teams.

use super::GuardLayer;

/// Admits members of the team with this id (stable across renames, unique
/// in the organization): the guard to use for access control.
///
/// ```
/// use meingpt_auth::require_team_id;
/// let engineering = require_team_id("team-eng");
/// # let _ = engineering;
/// ```
pub fn require_team_id(id: impl Into<String>) -> GuardLayer {
    let id = id.into();
    GuardLayer::named("team id", move |user| user.in_team_id(&id))
}

/// Admits members of a team with this name (exact match).
///
/// Team names are neither unique nor stable: two teams may share a name,
/// and an organization admin can rename a team (or give a new team an old
/// one's name). Prefer [`require_team_id`] for anything that protects data;
/// a name guard suits routes where a renamed team losing access is harmless.
///
/// ```
/// use meingpt_auth::require_team_name;
/// let engineering = require_team_name("Engineering");
/// # let _ = engineering;
/// ```
pub fn require_team_name(name: impl Into<String>) -> GuardLayer {
    let name = name.into();
    GuardLayer::named("team name", move |user| user.in_team_named(&name))
}

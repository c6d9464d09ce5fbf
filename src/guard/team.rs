//! Guards on the user's teams.

use super::GuardLayer;

/// Admits members of the team with this id (stable across renames).
pub fn require_team_id(id: impl Into<String>) -> GuardLayer {
    let id = id.into();
    GuardLayer::named("team id", move |user| user.in_team_id(&id))
}

/// Admits members of a team with this name (exact match).
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

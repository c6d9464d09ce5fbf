//! Routes: a path prefix, an upstream and a [`Policy`] each; the longest
//! prefix matching on whole path segments wins.

use std::fmt;

use http::uri::{Authority, PathAndQuery, Uri};
use meingpt_auth::{FrameAncestorsLayer, GuardLayer, MeinGptUser, Role};
use percent_encoding::percent_decode_str;

use crate::upgrade::Upgrades;

/// Who may use a route.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Policy {
    public: bool,
    roles: Vec<Role>,
    team_ids: Vec<String>,
    team_names: Vec<String>,
}

impl Policy {
    /// No authentication at all.
    pub fn public() -> Self {
        Self {
            public: true,
            roles: Vec::new(),
            team_ids: Vec::new(),
            team_names: Vec::new(),
        }
    }

    /// Any signed-in user.
    pub fn signed_in() -> Self {
        Self::new(Vec::new(), Vec::new(), Vec::new())
    }

    /// A signed-in user who has any of `roles` (when given), is in any of
    /// `team_ids` (when given) and in any of `team_names` (when given).
    pub fn new(roles: Vec<Role>, team_ids: Vec<String>, team_names: Vec<String>) -> Self {
        Self {
            public: false,
            roles,
            team_ids,
            team_names,
        }
    }

    /// Whether the route needs no authentication.
    pub fn is_public(&self) -> bool {
        self.public
    }

    /// Whether the route asks more of a user than being signed in.
    pub fn is_restricted(&self) -> bool {
        !self.roles.is_empty() || !self.team_ids.is_empty() || !self.team_names.is_empty()
    }

    /// The roles of which the user needs any (none: no role required).
    pub fn roles(&self) -> &[Role] {
        &self.roles
    }

    /// The team ids of which the user needs any (none: no team id required).
    pub fn team_ids(&self) -> &[String] {
        &self.team_ids
    }

    /// The team names of which the user needs any (none: no name required).
    pub fn team_names(&self) -> &[String] {
        &self.team_names
    }

    /// Whether `user` passes the role and team requirements.
    pub fn admits(&self, user: &MeinGptUser) -> bool {
        (self.roles.is_empty() || self.roles.iter().any(|role| user.has_role(role)))
            && (self.team_ids.is_empty() || self.team_ids.iter().any(|id| user.in_team_id(id)))
            && (self.team_names.is_empty()
                || self.team_names.iter().any(|name| user.in_team_named(name)))
    }

    /// The crate's guard for this policy (`403 insufficient_scope` when it fails).
    pub fn guard(&self) -> GuardLayer {
        let policy = self.clone();
        GuardLayer::new(move |user| policy.admits(user))
    }
}

/// Where a route's requests go: `http://{authority}{base}{path}`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Upstream {
    authority: Authority,
    base: String,
}

impl Upstream {
    /// An upstream at `authority` with a base path (no trailing `/`, may be empty).
    pub fn new(authority: Authority, base: String) -> Self {
        Self { authority, base }
    }

    /// The upstream's `host:port`.
    pub fn authority(&self) -> &Authority {
        &self.authority
    }

    /// The URI for a request path (and query) as the route passes it on.
    pub fn uri(&self, path: &str, query: Option<&str>) -> Result<Uri, http::Error> {
        let mut target = String::with_capacity(self.base.len() + path.len() + 1);
        target.push_str(&self.base);
        target.push_str(path);
        if target.is_empty() {
            target.push('/');
        }
        if let Some(query) = query {
            target.push('?');
            target.push_str(query);
        }
        let path_and_query = PathAndQuery::try_from(target)?;
        Uri::builder()
            .scheme("http")
            .authority(self.authority.clone())
            .path_and_query(path_and_query)
            .build()
    }
}

impl fmt::Display for Upstream {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "http://{}{}", self.authority, self.base)
    }
}

/// One route, validated.
#[derive(Debug, Clone)]
pub struct Route {
    /// Normalized prefix: starts with `/`, no trailing `/` unless it is `/`.
    pub prefix: String,
    /// The upstream.
    pub upstream: Upstream,
    /// Who may use it.
    pub policy: Policy,
    /// Whether the upstream also gets the token headers.
    pub forward_token: bool,
    /// Whether the prefix is removed before forwarding.
    pub strip_prefix: bool,
    /// `frame-ancestors` policy added to responses.
    pub frame_ancestors: Option<FrameAncestorsLayer>,
    /// Headers set on every forwarded request (values marked sensitive).
    pub inject_headers: Vec<(http::HeaderName, http::HeaderValue)>,
    /// The protocols a client may upgrade to (`websocket` by default).
    pub upgrades: Upgrades,
}

impl Route {
    /// Whether `path` is under this route's prefix (whole segments).
    pub fn matches(&self, path: &str) -> bool {
        prefix_matches(&self.prefix, path)
    }

    fn matches_ignoring_case(&self, path: &str) -> bool {
        prefix_matches(&self.prefix.to_lowercase(), path)
    }

    /// The path the upstream sees; `None` when the prefix is to be stripped
    /// but the request spells it percent-encoded.
    pub fn upstream_path<'p>(&self, path: &'p str) -> Option<&'p str> {
        if !self.strip_prefix || self.prefix == "/" {
            return Some(path);
        }
        if !prefix_matches(&self.prefix, path) {
            return None;
        }
        match &path[self.prefix.len()..] {
            "" => Some("/"),
            rest => Some(rest),
        }
    }
}

fn prefix_matches(prefix: &str, path: &str) -> bool {
    if prefix == "/" {
        return true;
    }
    match path.strip_prefix(prefix) {
        Some(rest) => rest.is_empty() || rest.starts_with('/'),
        None => false,
    }
}

/// The index of the route whose prefix is the longest match for `path`,
/// matched on the percent-decoded path: an upstream that decodes
/// `/admin%2Fusers` into `/admin/users` must get the `/admin` policy.
pub fn find<'r>(routes: &'r [Route], path: &str) -> Option<(usize, &'r Route)> {
    let decoded = percent_decode_str(path).decode_utf8_lossy();
    routes
        .iter()
        .enumerate()
        .filter(|(_, route)| route.matches(&decoded))
        .max_by_key(|(_, route)| route.prefix.len())
}

/// Whether `path` would pick another route if an upstream read it as some
/// servers do: dropping `;parameters` from segments (Java servlet
/// containers) or ignoring case. Such paths are refused rather than guessed.
pub fn is_ambiguous(routes: &[Route], path: &str) -> bool {
    let decoded = percent_decode_str(path).decode_utf8_lossy();
    let chosen = find(routes, path).map(|(index, _)| index);
    let without_parameters: String = decoded
        .split('/')
        .map(|segment| segment.split(';').next().unwrap_or(""))
        .collect::<Vec<_>>()
        .join("/");
    let lowercase = decoded.to_lowercase();
    [without_parameters, lowercase].iter().any(|variant| {
        let other = routes
            .iter()
            .enumerate()
            .filter(|(_, route)| route.matches(variant) || route.matches_ignoring_case(variant))
            .max_by_key(|(_, route)| route.prefix.len())
            .map(|(index, _)| index);
        other != chosen
    })
}

/// Whether `path`, once percent-decoded, has a `.` or `..` segment (split on
/// `/` and `\`). Such paths are refused: an upstream that normalizes them
/// could serve a route the gateway did not authorize.
pub fn has_dot_segments(path: &str) -> bool {
    let decoded = percent_decode_str(path).decode_utf8_lossy();
    // Decode twice: `%252e` must not become `.` only at the upstream.
    let twice = percent_decode_str(&decoded)
        .decode_utf8_lossy()
        .into_owned();
    [decoded.as_ref(), twice.as_str()].iter().any(|p| {
        p.split(['/', '\\'])
            .any(|segment| segment == "." || segment == "..")
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn route(prefix: &str, strip: bool) -> Route {
        Route {
            prefix: prefix.to_owned(),
            upstream: Upstream::new(Authority::from_static("127.0.0.1:1"), String::new()),
            policy: Policy::signed_in(),
            forward_token: false,
            strip_prefix: strip,
            frame_ancestors: None,
            inject_headers: Vec::new(),
            upgrades: Upgrades::default(),
        }
    }

    #[test]
    fn prefixes_match_whole_segments_only() {
        let api = route("/api", false);
        assert!(api.matches("/api"));
        assert!(api.matches("/api/"));
        assert!(api.matches("/api/x"));
        assert!(!api.matches("/apix"));
        assert!(!api.matches("/"));
    }

    #[test]
    fn longest_prefix_wins() {
        let routes = vec![
            route("/", false),
            route("/api/admin", false),
            route("/api", false),
        ];
        assert_eq!(find(&routes, "/api/admin/x").unwrap().0, 1);
        assert_eq!(find(&routes, "/api/administrator").unwrap().0, 2);
        assert_eq!(find(&routes, "/other").unwrap().0, 0);
        assert!(find(&routes[1..], "/other").is_none());
        assert_eq!(find(&routes, "/api%2Fadmin/x").unwrap().0, 1);
        assert_eq!(find(&routes, "/%61pi").unwrap().0, 2);
    }

    #[test]
    fn paths_that_other_servers_read_differently_are_ambiguous() {
        let routes = vec![route("/", false), route("/admin", false)];
        assert!(is_ambiguous(&routes, "/admin;jsessionid=1/users"));
        assert!(is_ambiguous(&routes, "/ADMIN/users"));
        assert!(is_ambiguous(&routes, "/Admin"));
        assert!(!is_ambiguous(&routes, "/admin/users;v=1"));
        assert!(!is_ambiguous(&routes, "/Other/Path"));
        assert!(!is_ambiguous(&routes, "/admin/Users"));
    }

    #[test]
    fn strip_prefix_leaves_a_rooted_path() {
        let api = route("/api", true);
        assert_eq!(api.upstream_path("/api"), Some("/"));
        assert_eq!(api.upstream_path("/api/x/y"), Some("/x/y"));
        assert_eq!(api.upstream_path("/%61pi/x"), None);
        assert_eq!(route("/api", false).upstream_path("/api/x"), Some("/api/x"));
    }

    #[test]
    fn upstream_uri_joins_base_path_and_query() {
        let upstream = Upstream::new(Authority::from_static("127.0.0.1:9"), "/base".to_owned());
        assert_eq!(
            upstream.uri("/x", Some("a=1")).unwrap().to_string(),
            "http://127.0.0.1:9/base/x?a=1"
        );
    }

    #[test]
    fn dot_segments_are_found_even_when_encoded() {
        assert!(has_dot_segments("/public/../admin"));
        assert!(has_dot_segments("/public/%2e%2e/admin"));
        assert!(has_dot_segments("/public%2f..%2fadmin"));
        assert!(has_dot_segments("/public/%252e%252e/admin"));
        assert!(has_dot_segments("/a\\..\\b"));
        assert!(has_dot_segments("/./a"));
        assert!(!has_dot_segments("/a/b.c/..d/e.."));
        assert!(!has_dot_segments("/"));
    }
}

//! Routes: a path prefix, an upstream and a [`Policy`] each; the longest
//! prefix matching on whole segments of the percent-decoded path wins
//! ([`route_for`]).

use std::borrow::Cow;
use std::fmt;

use http::uri::{Authority, PathAndQuery, Uri};
use meingpt_auth::{FrameAncestorsLayer, GuardLayer, MeinGptUser, ResourceMetadata, Role};

use crate::admission::{Refusal, RequestPath};

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
    /// Whether paths with backslashes, control characters, double
    /// percent-encoding or bytes that are not UTF-8 pass (as long as every
    /// reading of them picks this route); refused (`400`) otherwise.
    pub allow_unusual_path_characters: bool,
    /// The protocols a client may upgrade to (`websocket` by default).
    pub upgrades: Upgrades,
    /// The OAuth protected resource (RFC 9728) the route is, for MCP
    /// clients: its metadata is served at its well-known URLs, the route's
    /// challenges name it, tokens of OAuth issuers must be issued for it
    /// and grant its scopes.
    pub protected_resource: Option<ResourceMetadata>,
    /// Embed mode, when the route is framed by meinGPT as a Custom AI App.
    pub embed: Option<crate::embed::EmbedOptions>,
}

impl Route {
    /// Whether the decoded `path` is under this route's prefix (whole segments).
    pub fn matches(&self, path: &str) -> bool {
        prefix_matches(&self.prefix, path)
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

/// Like [`prefix_matches`] ignoring case, for a `lowercase` path.
fn prefix_matches_lowercase(prefix: &str, lowercase: &str) -> bool {
    if prefix == "/" {
        return true;
    }
    if !prefix.is_ascii() {
        return prefix_matches(&prefix.to_lowercase(), lowercase);
    }
    let path = lowercase.as_bytes();
    path.len() >= prefix.len()
        && path[..prefix.len()].eq_ignore_ascii_case(prefix.as_bytes())
        && matches!(path.get(prefix.len()), None | Some(b'/'))
}

/// The index of the route whose prefix is the longest match for the
/// percent-decoded `path`: an upstream that decodes `/admin%2Fusers` into
/// `/admin/users` must get the `/admin` policy.
pub fn find<'r>(routes: &'r [Route], path: &str) -> Option<(usize, &'r Route)> {
    longest(routes, |route| route.matches(path))
}

fn longest(routes: &[Route], matches: impl Fn(&Route) -> bool) -> Option<(usize, &Route)> {
    routes
        .iter()
        .enumerate()
        .filter(|(_, route)| matches(route))
        .max_by_key(|(_, route)| route.prefix.len())
}

/// The route that decides a request for `path`, chosen on its one decoding.
///
/// Refused ([`Refusal`]): unusual characters ([`RequestPath::unusual`])
/// unless the chosen route allows them, and then when an upstream that
/// decodes twice or reads `\` as `/` would pick another route; and a path
/// that would pick another route if an upstream dropped `;parameters` from
/// its segments (Java servlet containers) or ignored case.
pub fn route_for<'r>(
    routes: &'r [Route],
    path: &RequestPath<'_>,
) -> Result<Option<(usize, &'r Route)>, Refusal> {
    let chosen = find(routes, path.decoded());
    let index = chosen.map(|(index, _)| index);
    if let Some(unusual) = path.unusual() {
        if !chosen.is_some_and(|(_, route)| route.allow_unusual_path_characters) {
            return Err(unusual);
        }
        if let Some(reading) = path.lenient_reading()?
            && find(routes, &reading).map(|(index, _)| index) != index
        {
            return Err(Refusal::AmbiguousRoute);
        }
    }
    if is_ambiguous(routes, path, index) {
        return Err(Refusal::AmbiguousRoute);
    }
    Ok(chosen)
}

/// Whether the decoded `path` would pick another route than `chosen` if an
/// upstream dropped `;parameters` from its segments or ignored case.
fn is_ambiguous(routes: &[Route], path: &RequestPath<'_>, chosen: Option<usize>) -> bool {
    let lowercase: Cow<'_, str> = if path.has_case() {
        Cow::Owned(path.decoded().to_lowercase())
    } else {
        Cow::Borrowed(path.decoded())
    };
    let ignoring_case = |lowercase: &str| {
        longest(routes, |route| {
            prefix_matches_lowercase(&route.prefix, lowercase)
        })
        .map(|(index, _)| index)
    };
    if ignoring_case(&lowercase) != chosen {
        return true;
    }
    if !path.has_parameters() {
        return false;
    }
    let mut without_parameters = String::with_capacity(lowercase.len());
    for (index, segment) in lowercase.split('/').enumerate() {
        if index > 0 {
            without_parameters.push('/');
        }
        without_parameters.push_str(segment.split(';').next().unwrap_or(""));
    }
    ignoring_case(&without_parameters) != chosen
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
            allow_unusual_path_characters: false,
            upgrades: Upgrades::default(),
            protected_resource: None,
            embed: None,
        }
    }

    fn chosen(routes: &[Route], raw: &str) -> Result<Option<usize>, Refusal> {
        let path = RequestPath::parse(raw)?;
        route_for(routes, &path).map(|found| found.map(|(index, _)| index))
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
    fn longest_prefix_of_the_decoded_path_wins() {
        let routes = vec![
            route("/", false),
            route("/api/admin", false),
            route("/api", false),
        ];
        assert_eq!(chosen(&routes, "/api/admin/x"), Ok(Some(1)));
        assert_eq!(chosen(&routes, "/api/administrator"), Ok(Some(2)));
        assert_eq!(chosen(&routes, "/other"), Ok(Some(0)));
        assert_eq!(chosen(&routes[1..], "/other"), Ok(None));
        assert_eq!(chosen(&routes, "/api%2Fadmin/x"), Ok(Some(1)));
        assert_eq!(chosen(&routes, "/%61pi"), Ok(Some(2)));
    }

    #[test]
    fn paths_that_other_servers_read_differently_are_ambiguous() {
        let routes = vec![route("/", false), route("/admin", false)];
        for raw in [
            "/admin;jsessionid=1/users",
            "/ADMIN/users",
            "/Admin",
            "/%41dmin",
        ] {
            assert_eq!(chosen(&routes, raw), Err(Refusal::AmbiguousRoute), "{raw}");
        }
        for raw in ["/admin/users;v=1", "/Other/Path", "/admin/Users", "/Ä/ö"] {
            assert!(chosen(&routes, raw).is_ok(), "{raw}");
        }
    }

    #[test]
    fn unusual_characters_pass_only_where_the_route_allows_them_and_every_reading_agrees() {
        let mut files = route("/files", false);
        files.allow_unusual_path_characters = true;
        let routes = vec![
            route("/", false),
            route("/admin", false),
            files,
            route("/files/private", false),
        ];
        assert_eq!(chosen(&routes, "/\\admin"), Err(Refusal::Backslash));
        assert_eq!(chosen(&routes, "/%5cadmin"), Err(Refusal::Backslash));
        assert_eq!(chosen(&routes, "/%2561dmin"), Err(Refusal::DoubleEncoding));
        assert_eq!(chosen(&routes, "/admin%00"), Err(Refusal::ControlCharacter));
        assert_eq!(chosen(&routes, "/files/a%5Cb%2520c%00"), Ok(Some(2)));
        assert_eq!(chosen(&routes, "/files/%ff"), Ok(Some(2)));
        // Read twice, these leave /files.
        assert_eq!(
            chosen(&routes, "/files/x%252F..%252F..%252Fadmin"),
            Err(Refusal::DotSegment)
        );
        assert_eq!(
            chosen(&routes, "/files/%2570rivate"),
            Err(Refusal::AmbiguousRoute)
        );
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
}

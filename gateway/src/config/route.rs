//! Routes as the file writes them, resolved: upstream URLs, path
//! prefixes, policies and `${VAR}` secrets from the environment.

use super::*;

/// Parses an upstream URL: `http://host:port` with an optional base path.
pub(super) fn upstream_url(key: &str, value: &str) -> Result<Upstream, ConfigError> {
    let uri: Uri = value
        .parse()
        .map_err(|_| ConfigError::new(key, format!("{value:?} is not a URL")))?;
    match uri.scheme_str() {
        Some("http") => {}
        Some(_) => {
            return Err(ConfigError::new(
                key,
                "only http:// upstreams are supported (the gateway terminates TLS itself)",
            ));
        }
        None => {
            return Err(ConfigError::new(
                key,
                format!("{value:?} is not an http:// URL"),
            ));
        }
    }
    let authority: Authority = uri
        .authority()
        .cloned()
        .ok_or_else(|| ConfigError::new(key, "has no host"))?;
    if authority.as_str().contains('@') {
        return Err(ConfigError::new(key, "must not carry credentials"));
    }
    if uri.query().is_some() {
        return Err(ConfigError::new(key, "must not have a query string"));
    }
    let base = uri.path().trim_end_matches('/').to_owned();
    Ok(Upstream::new(authority, base))
}

pub(super) fn resolve_route(
    index: usize,
    route: RouteConfig,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<Route, ConfigError> {
    let key = |field: &str| format!("route[{index}].{field}");
    let prefix = normalize_prefix(&route.prefix).ok_or_else(|| {
        ConfigError::new(
            key("prefix"),
            "must start with / and hold no ?, #, %, \\, empty, . or .. segments",
        )
    })?;
    if RESERVED_PATHS.contains(&prefix.as_str()) {
        return Err(ConfigError::new(
            key("prefix"),
            format!("{prefix} is reserved"),
        ));
    }
    let upstream = upstream_url(&key("upstream"), &route.upstream)?;
    let embed = super::embed::route_options(&key, &route)?;
    let restricted =
        !route.roles.is_empty() || !route.team_ids.is_empty() || !route.team_names.is_empty();
    if route.public && restricted {
        return Err(ConfigError::new(
            key("public"),
            "a public route cannot also require roles or teams",
        ));
    }
    for (field, values) in [
        ("roles", &route.roles),
        ("team_ids", &route.team_ids),
        ("team_names", &route.team_names),
    ] {
        if values.iter().any(|v| v.is_empty()) {
            return Err(ConfigError::new(
                key(field),
                "must not hold an empty string",
            ));
        }
    }
    let policy = if route.public {
        Policy::public()
    } else {
        Policy::new(
            route.roles.iter().map(|r| Role::from(r.as_str())).collect(),
            route.team_ids,
            route.team_names,
        )
    };
    let frame_ancestors = match route.frame_ancestors {
        None => None,
        Some(origins) => {
            let mut origins = origins.iter();
            let first = origins.next().ok_or_else(|| {
                ConfigError::new(key("frame_ancestors"), "must name at least one origin")
            })?;
            let mut layer = FrameAncestorsLayer::new(first)
                .map_err(|e| ConfigError::new(key("frame_ancestors"), e.to_string()))?;
            for origin in origins {
                layer = layer
                    .allow(origin)
                    .map_err(|e| ConfigError::new(key("frame_ancestors"), e.to_string()))?;
            }
            Some(layer)
        }
    };
    let mut inject_headers = Vec::with_capacity(route.inject_headers.len());
    for (name, template) in &route.inject_headers {
        let field = key(&format!("inject_headers.{name}"));
        let header = HeaderName::try_from(name.as_str())
            .map_err(|_| ConfigError::new(&field, "is not a valid header name"))?;
        if identity::is_identity_header(&header) {
            return Err(ConfigError::new(
                &field,
                "identity headers are set by the gateway from the verified token",
            ));
        }
        if identity::is_hop_by_hop(&header) || header == header::HOST {
            return Err(ConfigError::new(
                &field,
                "cannot be injected (connection-level header)",
            ));
        }
        let value = expand(template, env).map_err(|reason| ConfigError::new(&field, reason))?;
        let mut value = HeaderValue::try_from(value).map_err(|_| {
            ConfigError::new(
                &field,
                "the value (after ${VAR} expansion) is not a valid header value",
            )
        })?;
        value.set_sensitive(true);
        inject_headers.push((header, value));
    }
    let upgrades = match route.upgrades {
        Some(names) => Upgrades::new(names).map_err(|e| ConfigError::new(key("upgrades"), e))?,
        None => Upgrades::default(),
    };
    Ok(Route {
        prefix,
        upstream,
        policy,
        forward_token: route.forward_token,
        strip_prefix: route.strip_prefix,
        frame_ancestors,
        inject_headers,
        allow_unusual_path_characters: route.allow_unusual_path_characters,
        upgrades,
        embed,
        // Described against the authenticator once it is known.
        protected_resource: None,
    })
}

/// `/api/` → `/api`; `/` stays; anything not a plain path is refused.
pub(super) fn normalize_prefix(prefix: &str) -> Option<String> {
    if !prefix.starts_with('/') || prefix.contains(['?', '#']) {
        return None;
    }
    // A prefix is a path every route admits, spelled as it decodes.
    let path = crate::admission::RequestPath::parse(prefix).ok()?;
    if path.unusual().is_some() || path.decoded() != prefix {
        return None;
    }
    let trimmed = prefix.trim_end_matches('/');
    Some(if trimmed.is_empty() {
        "/".to_owned()
    } else {
        trimmed.to_owned()
    })
}

/// Replaces every `${VAR}` in `template` with the variable's value. Errors
/// name the variable, never a value.
pub(super) fn expand(
    template: &str,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<String, String> {
    let mut out = String::with_capacity(template.len());
    let mut rest = template;
    while let Some(start) = rest.find("${") {
        out.push_str(&rest[..start]);
        let after = &rest[start + 2..];
        let end = after
            .find('}')
            .ok_or_else(|| "unclosed ${ in the value".to_owned())?;
        let name = &after[..end];
        let valid =
            !name.is_empty() && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_');
        if !valid {
            return Err(format!("${{{name}}} is not a valid variable reference"));
        }
        let value = env(name).ok_or_else(|| format!("environment variable {name} is not set"))?;
        out.push_str(&value);
        rest = &after[end + 1..];
    }
    out.push_str(rest);
    Ok(out)
}

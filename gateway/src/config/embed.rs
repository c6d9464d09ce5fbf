//! Embed mode's settings: `[embed]` (who meinGPT is), a route's `embed`
//! options, and `GATEWAY_EMBED` for the environment-only route.

use super::*;
use crate::embed::EmbedOptions;

/// `[embed]`: who frames the embed routes.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EmbedConfig {
    /// The origins of meinGPT; the issuer's origin when absent.
    pub meingpt_origins: Option<Vec<String>>,
}

/// Who frames the embed routes and answers their token messages.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MeinGptOrigins {
    /// These origins.
    Listed(Vec<String>),
    /// The development stand-in: this gateway under both loopback names.
    Development,
}

impl MeinGptOrigins {
    /// The origins, for a gateway reached with `scheme` on `port`.
    pub fn resolve(&self, scheme: &str, port: u16) -> Vec<String> {
        match self {
            Self::Listed(origins) => origins.clone(),
            Self::Development => ["localhost", "127.0.0.1"]
                .iter()
                .map(|host| format!("{scheme}://{host}:{port}"))
                .collect(),
        }
    }
}

/// A route's `embed` options, checked (the origins come later, for all
/// routes at once).
pub(super) fn route_options(
    key: &dyn Fn(&str) -> String,
    route: &RouteConfig,
) -> Result<Option<EmbedOptions>, ConfigError> {
    if !route.embed {
        for (field, set) in [
            ("embed_script", route.embed_script.is_some()),
            (
                "embed_partition_cookies",
                route.embed_partition_cookies.is_some(),
            ),
        ] {
            if set {
                return Err(ConfigError::new(key(field), "only with embed = true"));
            }
        }
        return Ok(None);
    }
    if route.public {
        return Err(ConfigError::new(
            key("embed"),
            "an embed route signs its users in; it cannot also be public",
        ));
    }
    Ok(Some(EmbedOptions {
        meingpt_origins: Vec::new(),
        inject_script: route.embed_script.unwrap_or(true),
        partition_cookies: route.embed_partition_cookies.unwrap_or(false),
    }))
}

/// Whether the environment-only route is an embed route: `GATEWAY_EMBED`,
/// or, when unset, whether the development issuer runs (its stand-in
/// frames the app).
pub(super) fn from_env(
    env: &dyn Fn(&str) -> Option<String>,
    development: bool,
) -> Result<Option<EmbedOptions>, ConfigError> {
    let on = match env("GATEWAY_EMBED").as_deref() {
        None => development,
        Some("1" | "true") => true,
        Some("0" | "false") => false,
        Some(_) => return Err(ConfigError::new("GATEWAY_EMBED", "must be 1 or 0")),
    };
    Ok(on.then(|| EmbedOptions {
        meingpt_origins: Vec::new(),
        inject_script: true,
        partition_cookies: false,
    }))
}

/// meinGPT's origins: `listed` (`[embed] meingpt_origins`), else the
/// stand-in's with the development issuer, else the meinGPT issuer's
/// origin (`issuer`, `MEINGPT_ISSUER`, or `https://app.meingpt.com`).
/// Checked only when a route embeds.
pub(super) fn meingpt_origins(
    listed: Option<Vec<String>>,
    issuer: Option<&str>,
    auth: &AuthSource,
    routes: &[Route],
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<MeinGptOrigins, ConfigError> {
    if !routes.iter().any(|route| route.embed.is_some()) {
        return Ok(MeinGptOrigins::Listed(Vec::new()));
    }
    const KEY: &str = "embed.meingpt_origins";
    if let Some(origins) = listed {
        if origins.is_empty() {
            return Err(ConfigError::new(KEY, "must name at least one origin"));
        }
        for origin in &origins {
            FrameAncestorsLayer::new(origin).map_err(|e| ConfigError::new(KEY, e.to_string()))?;
        }
        return Ok(MeinGptOrigins::Listed(origins));
    }
    if matches!(auth, AuthSource::Development) {
        return Ok(MeinGptOrigins::Development);
    }
    let meingpt = issuer.is_some() || env("MEINGPT_ORG_ID").is_some();
    if !meingpt {
        return Err(ConfigError::new(
            KEY,
            "required for embed routes when the issuer is not meinGPT",
        ));
    }
    let issuer = issuer
        .map(str::to_owned)
        .or_else(|| env("MEINGPT_ISSUER"))
        .unwrap_or_else(|| meingpt_auth::DEFAULT_ISSUER.to_owned());
    let origin = origin_of(&issuer)
        .ok_or_else(|| ConfigError::new(KEY, format!("cannot tell the origin of {issuer:?}")))?;
    FrameAncestorsLayer::new(&origin).map_err(|e| ConfigError::new(KEY, e.to_string()))?;
    Ok(MeinGptOrigins::Listed(vec![origin]))
}

/// `scheme://host[:port]` of a URL.
fn origin_of(url: &str) -> Option<String> {
    let uri: Uri = url.parse().ok()?;
    Some(format!("{}://{}", uri.scheme_str()?, uri.authority()?))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn embed_config() -> RouteConfig {
        let file =
            parse("[[route]]\nprefix = \"/\"\nupstream = \"http://127.0.0.1:1\"\nembed = true\n")
                .unwrap();
        file.route.into_iter().next().unwrap()
    }

    #[test]
    fn the_issuer_is_meingpt_unless_origins_are_listed() {
        let embed_route = |_: &str| None;
        let routes = [Route {
            prefix: "/".to_owned(),
            upstream: Upstream::new(Authority::from_static("127.0.0.1:1"), String::new()),
            policy: Policy::signed_in(),
            forward_token: false,
            strip_prefix: false,
            frame_ancestors: None,
            inject_headers: Vec::new(),
            allow_unusual_path_characters: false,
            upgrades: Upgrades::default(),
            protected_resource: None,
            embed: route_options(&|f| f.to_owned(), &embed_config()).unwrap(),
        }];
        let auth = AuthSource::Development;
        assert_eq!(
            meingpt_origins(None, None, &auth, &routes, &embed_route).unwrap(),
            MeinGptOrigins::Development
        );
        assert_eq!(
            MeinGptOrigins::Development.resolve("https", 8443),
            ["https://localhost:8443", "https://127.0.0.1:8443"]
        );
        let listed = Some(vec!["https://meingpt.example".to_owned()]);
        assert_eq!(
            meingpt_origins(listed, None, &auth, &routes, &embed_route).unwrap(),
            MeinGptOrigins::Listed(vec!["https://meingpt.example".to_owned()])
        );
        let not_an_origin = Some(vec!["https://meingpt.example/apps".to_owned()]);
        assert_eq!(
            meingpt_origins(not_an_origin, None, &auth, &routes, &embed_route)
                .unwrap_err()
                .key(),
            "embed.meingpt_origins"
        );
        assert_eq!(
            origin_of("https://self-hosted.example:8443/").as_deref(),
            Some("https://self-hosted.example:8443")
        );
    }
}

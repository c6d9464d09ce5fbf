//! What the gateway prints when it runs with the embedded development
//! issuer: demo tokens, curl commands and a working nginx configuration,
//! and for each route a curl command with a token the route admits.

use meingpt_auth::testing::MockIssuer;
use meingpt_auth::{MeinGptAuth, MeinGptUser};

use crate::admission::{METHOD_SPELLINGS, URI_SPELLINGS};
use crate::config::ForwardAuthEndpoint;
use crate::routes::{Policy, Route};

/// The banner for a gateway at `base` using `issuer`, its forward-auth
/// endpoint `endpoint`.
pub(crate) fn banner(base: &str, issuer: &MockIssuer, endpoint: &ForwardAuthEndpoint) -> String {
    let forward_auth_path = &endpoint.path;
    // Known names as proxies write them; any other as configured.
    let spelled = |name: &http::HeaderName| {
        URI_SPELLINGS
            .iter()
            .chain(METHOD_SPELLINGS.iter())
            .find(|spelling| spelling.eq_ignore_ascii_case(name.as_str()))
            .map_or_else(|| name.to_string(), |spelling| (*spelling).to_owned())
    };
    let (uri_header, method_header) = (
        spelled(endpoint.headers.uri()),
        spelled(endpoint.headers.method()),
    );
    // No client copy of the original URI or method passes under any other
    // name: to the gateway (which would refuse the request), nor to the app.
    let cleared = |except: &[&http::HeaderName]| {
        URI_SPELLINGS
            .iter()
            .chain(METHOD_SPELLINGS.iter())
            .filter(|name| !except.iter().any(|e| e.as_str().eq_ignore_ascii_case(name)))
            .map(|name| format!("        proxy_set_header {name} \"\";\n"))
            .collect::<String>()
    };
    let cleared_for_gateway = cleared(&[endpoint.headers.uri(), endpoint.headers.method()]);
    let cleared_for_app = cleared(&[]);
    let admin = issuer.demo_admin().sign();
    let member = issuer.demo_member().sign();
    let gateway = base
        .strip_prefix("http://")
        .or_else(|| base.strip_prefix("https://"))
        .unwrap_or(base);
    let mut out = format!(
        "No issuer configured: using the embedded development issuer at {} \
         (organization {}). Its tokens are valid for one hour; never use this in production.\n\n\
         ADMIN={admin}\n\
         MEMBER={member}\n\n\
         Forward auth:\n\
         curl -i -H \"{uri_header}: /any/path\" {base}{forward_auth_path}\n\
         curl -i -H \"X-meinGPT-JWT: $ADMIN\" -H \"{uri_header}: /any/path\" {base}{forward_auth_path}\n",
        issuer.issuer(),
        issuer.organization(),
    );
    out.push_str(&format!(
        r#"
nginx in front of your app (replace 127.0.0.1:8000), asking this gateway (a 401 carries
the gateway's WWW-Authenticate; gateway/deploy/nginx.conf also passes it on with a 403).
The gateway reads the original request from {uri_header} and {method_header} only, and
answers forward auth to trusted proxies only (GATEWAY_TRUSTED_PROXIES, default loopback);
nginx drops client headers with "_" in their names (underscores_in_headers off, the default):

    location = {forward_auth_path} {{
        internal;
        proxy_pass http://{gateway};
        proxy_pass_request_body off;
        proxy_set_header Content-Length "";
        proxy_set_header {uri_header} $request_uri;
        proxy_set_header {method_header} $request_method;
{cleared_for_gateway}    }}

    location / {{
        auth_request {forward_auth_path};
        auth_request_set $auth_user $upstream_http_x_auth_request_user;
        auth_request_set $auth_email $upstream_http_x_auth_request_email;
        auth_request_set $auth_username $upstream_http_x_auth_request_preferred_username;
        auth_request_set $auth_groups $upstream_http_x_auth_request_groups;
        auth_request_set $auth_org $upstream_http_x_meingpt_org_id;
        auth_request_set $auth_role $upstream_http_x_meingpt_role;
        auth_request_set $auth_claims $upstream_http_x_meingpt_claims;

        proxy_set_header X-Auth-Request-User $auth_user;
        proxy_set_header X-Auth-Request-Email $auth_email;
        proxy_set_header X-Auth-Request-Preferred-Username $auth_username;
        proxy_set_header X-Auth-Request-Groups $auth_groups;
        proxy_set_header X-meinGPT-Org-Id $auth_org;
        proxy_set_header X-meinGPT-Role $auth_role;
        proxy_set_header X-meinGPT-Claims $auth_claims;
        proxy_set_header X-meinGPT-JWT "";
        proxy_set_header Authorization "";
{cleared_for_app}        proxy_pass http://127.0.0.1:8000;
    }}
"#
    ));
    out
}

/// For each route, in the configuration's order: its prefix, upstream and
/// policy, and a curl command with a development token the route admits
/// (`$ADMIN` or `$MEMBER` when one of them passes; else the member with
/// the role and team the route asks for, printed as `ROUTE<index>=…`).
/// Which token passes is decided as for a request: `auth` (the gateway's
/// own) verifies it, the route's policy judges the user.
pub(crate) async fn route_tokens(
    base: &str,
    issuer: &MockIssuer,
    auth: &MeinGptAuth,
    routes: &[Route],
) -> String {
    let verified = |token: String| async move {
        let user = auth.verify(&token).await.ok()?;
        Some((token, user))
    };
    // The member first: the least a route needs.
    let demo = [
        ("MEMBER", verified(issuer.demo_member().sign()).await),
        ("ADMIN", verified(issuer.demo_admin().sign()).await),
    ];
    let mut out = String::from("Routes, each with a token it admits:\n");
    for (index, route) in routes.iter().enumerate() {
        let url = format!("{base}{}", route.prefix);
        out.push_str(&format!(
            "{} -> {}, {}\n",
            route.prefix,
            route.upstream,
            describe(&route.policy)
        ));
        if route.policy.is_public() {
            out.push_str(&format!("curl -i {url}\n"));
            continue;
        }
        let admits = |user: &MeinGptUser| route.policy.admits(user);
        let known = demo.iter().find_map(|(name, verified)| match verified {
            Some((_, user)) if admits(user) => Some(format!("${name}")),
            _ => None,
        });
        let name = match known {
            Some(name) => name,
            None => match verified(route_token(issuer, &route.policy)).await {
                Some((token, user)) if admits(&user) => {
                    out.push_str(&format!("ROUTE{index}={token}\n"));
                    format!("$ROUTE{index}")
                }
                _ => {
                    out.push_str("(no development token passes this route)\n");
                    continue;
                }
            },
        };
        out.push_str(&format!(
            "curl -i -H \"Authorization: Bearer {name}\" {url}\n"
        ));
    }
    out
}

/// The development member with the first role, team id and team name the
/// policy asks for.
fn route_token(issuer: &MockIssuer, policy: &Policy) -> String {
    let mut token = issuer.demo_member();
    if let Some(role) = policy.roles().first() {
        token = token.role(role.as_str());
    }
    let id = policy.team_ids().first().map(String::as_str);
    let name = policy.team_names().first().map(String::as_str);
    let team = match (id, name) {
        (Some(id), Some(name)) => Some((id, name)),
        (Some(only), None) | (None, Some(only)) => Some((only, only)),
        (None, None) => None,
    };
    if let Some((id, name)) = team {
        token = token.team(id, name);
    }
    token.sign()
}

/// "public", "any signed-in user", or what the user needs.
fn describe(policy: &Policy) -> String {
    if policy.is_public() {
        return "public".to_owned();
    }
    if !policy.is_restricted() {
        return "any signed-in user".to_owned();
    }
    let any = |kind: &str, items: Vec<&str>| {
        (!items.is_empty()).then(|| format!("{kind} {}", items.join(" or ")))
    };
    let needs: Vec<String> = [
        any(
            "role",
            policy.roles().iter().map(|role| role.as_str()).collect(),
        ),
        any(
            "team id",
            policy.team_ids().iter().map(String::as_str).collect(),
        ),
        any(
            "team name",
            policy.team_names().iter().map(String::as_str).collect(),
        ),
    ]
    .into_iter()
    .flatten()
    .collect();
    needs.join(" and ")
}

/// Where the meinGPT stand-in is, for a gateway at `base`: under the other
/// loopback name than the app it frames, so that the two are two sites as
/// in production.
pub(crate) fn stand_in(base: &str) -> String {
    let (scheme, rest) = base.split_once("://").unwrap_or(("http", base));
    let port = rest.rsplit_once(':').map_or("", |(_, port)| port);
    format!(
        "Embed mode: open the meinGPT stand-in at {scheme}://localhost:{port}{path} \
         to see the app as meinGPT shows it (framed from {scheme}://127.0.0.1:{port}/, \
         with tokens of the development issuer; ?user=member, ?lifetime=20 and ?error=1 \
         change what it hands out).",
        path = crate::embed::stand_in::STAND_IN_PATH,
    )
}

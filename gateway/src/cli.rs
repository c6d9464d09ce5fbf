//! The command line: `meingpt-gateway [--config FILE]`,
//! `meingpt-gateway check [--config FILE]`, `--help`, `--version`.

use std::ffi::OsString;
use std::path::PathBuf;

/// What the command line asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    /// Run with the file, or from the environment alone.
    Run {
        /// The TOML file.
        config: Option<PathBuf>,
    },
    /// Validate the configuration and exit.
    Check {
        /// The TOML file; the environment-only configuration when absent.
        config: Option<PathBuf>,
    },
    /// Print the usage.
    Help,
    /// Print the version.
    Version,
}

/// The usage text (`--help`).
pub const USAGE: &str = "\
meingpt-gateway: admits only the users meinGPT (or any OpenID Connect / JWT issuer) vouches
for, in front of any HTTP app: as a reverse proxy, or as the forward-auth endpoint of nginx,
Caddy, Traefik, Envoy or ingress-nginx.

Usage:
  meingpt-gateway [--config FILE]          run (without --config: from the environment alone)
  meingpt-gateway check [--config FILE]    validate the configuration: prints ok and exits 0,
                                           or prints one error line naming the key and exits 2
  meingpt-gateway --help | --version

Options:
  -c, --config FILE   the TOML configuration file (below)
  -h, --help          print this text
  -V, --version       print the version

Configuration file (TOML; unknown keys are refused):
  listen = \"127.0.0.1:8080\"         where to listen (LISTEN_ADDR overrides it)
  metrics_listen, max_body_bytes, connect_timeout_secs, response_timeout_secs,
  trusted_proxies = [\"10.0.0.0/8\"]  who may ask forward auth and send forwarding headers
                                    (default: loopback)
  [forward_auth]                    path (default /_meingpt/auth), uri_header (default
                                    X-Original-URI), method_header (default X-Original-Method)
  [auth]                            organizations = [\"clx…\"], issuer, jwks_url; without
                                    [auth], the issuer comes from the variables below
  [tls]                             cert, key (PEM files)
  [connections]                     max, header_read_timeout_secs, idle_timeout_secs,
                                    tls_handshake_timeout_secs
  [embed]                           meingpt_origins (default: the issuer's origin)
  [[route]]                         prefix, upstream = \"http://host:port\", and a policy:
                                    public, roles, team_ids, team_names; forward_token,
                                    strip_prefix, frame_ancestors, upgrades,
                                    allow_unusual_path_characters, [route.inject_headers];
                                    embed = true (an unmodified web app framed by meinGPT),
                                    embed_script, embed_partition_cookies;
                                    [route.protected_resource] (an MCP server's OAuth:
                                    resource, scopes, resource_name, authorization_servers)

Environment:
  MEINGPT_ORG_ID       meinGPT organization id(s), comma separated
  MEINGPT_ISSUER       the meinGPT instance (default https://app.meingpt.com)
  MEINGPT_JWKS_URL     override of the derived JWKS URL (one organization)
  AUTH_TYPE            jwt_oidc or jwt_local: another issuer, described by JWT_ISS,
                       JWT_AUD, JWT_ALG, JWT_DECODE_KEY_B64, JWT_ROLE_CLAIM (OpenGPTs' names)
  JWKS_CA_FILE         PEM bundle of extra root certificates for key fetches
  MCP_RESOURCE_URL     the URL MCP clients use: the gateway serves its OAuth metadata
                       (RFC 9728), every challenge names it, and without JWT_AUD the
                       AUTH_TYPE issuer's tokens must be issued for it; with
                       GATEWAY_UPSTREAM the route / is that resource
  MCP_SCOPES           its scopes, space or comma separated (the route / asks OAuth
                       tokens for all of them)
  GATEWAY_UPSTREAM     without --config: one route / to this upstream, any signed-in user
  GATEWAY_TRUSTED_PROXIES, GATEWAY_FORWARD_AUTH_PATH, GATEWAY_FORWARD_AUTH_URI_HEADER,
  GATEWAY_FORWARD_AUTH_METHOD_HEADER
                       without --config: trusted_proxies and [forward_auth] (above)
  GATEWAY_EMBED        without --config: 1 makes the GATEWAY_UPSTREAM route an embed route
                       (default: on with the development issuer)
  LISTEN_ADDR          where to listen (default 127.0.0.1:3000)
  RUST_LOG             log filter for stderr (default info)

With no issuer configured (no [auth], none of the issuer's variables) on a loopback address,
the gateway starts an embedded development issuer and prints tokens and a curl command for
each route; on any other address it refuses to start.

Documentation: gateway/README.md and the Gateway section of README.md in the meingpt-auth
repository (the configuration, identity headers, forward auth for each proxy, embedding an
existing web app, operation).";

/// Parses the arguments after the program name; the error is one line.
pub fn parse(args: impl IntoIterator<Item = OsString>) -> Result<Command, String> {
    let mut args = args.into_iter();
    let mut check = false;
    let mut config = None;
    while let Some(arg) = args.next() {
        let text = arg.to_string_lossy();
        match text.as_ref() {
            "check" if !check && config.is_none() => check = true,
            "-h" | "--help" => return Ok(Command::Help),
            "-V" | "--version" => return Ok(Command::Version),
            "-c" | "--config" => {
                let path = args
                    .next()
                    .ok_or_else(|| "--config: a file path is required".to_owned())?;
                if config.replace(PathBuf::from(path)).is_some() {
                    return Err("--config: given twice".to_owned());
                }
            }
            other => match other.strip_prefix("--config=") {
                Some(path) if !path.is_empty() => {
                    if config.replace(PathBuf::from(path)).is_some() {
                        return Err("--config: given twice".to_owned());
                    }
                }
                _ => return Err(format!("unexpected argument {other:?} (see --help)")),
            },
        }
    }
    Ok(if check {
        Command::Check { config }
    } else {
        Command::Run { config }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse_str(args: &[&str]) -> Result<Command, String> {
        parse(args.iter().map(OsString::from))
    }

    #[test]
    fn config_and_check_are_understood() {
        assert_eq!(parse_str(&[]), Ok(Command::Run { config: None }));
        assert_eq!(
            parse_str(&["--config", "g.toml"]),
            Ok(Command::Run {
                config: Some("g.toml".into())
            })
        );
        assert_eq!(
            parse_str(&["check", "--config=g.toml"]),
            Ok(Command::Check {
                config: Some("g.toml".into())
            })
        );
    }

    #[test]
    fn bad_arguments_are_one_line_errors() {
        assert!(
            parse_str(&["--config"])
                .unwrap_err()
                .starts_with("--config")
        );
        assert!(parse_str(&["--port", "1"]).is_err());
        assert!(parse_str(&["-c", "a", "-c", "b"]).is_err());
    }
}

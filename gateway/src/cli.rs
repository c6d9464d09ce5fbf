//! The command line: `meingpt-gateway [--config FILE]`,
//! `meingpt-gateway check [--config FILE]`.

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

/// The usage text.
pub const USAGE: &str = "\
usage: meingpt-gateway [--config FILE]         run (without --config: from the environment)
       meingpt-gateway check [--config FILE]   validate the configuration and exit (0 ok, 2 error)

environment-only mode: MEINGPT_ORG_ID, MEINGPT_ISSUER, MEINGPT_JWKS_URL, AUTH_TYPE, JWT_* (the
issuer), GATEWAY_UPSTREAM (one route / for any signed-in user), LISTEN_ADDR (default 127.0.0.1:3000)";

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

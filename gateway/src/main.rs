//! `meingpt-gateway`: parse the command line and the configuration, build
//! the stack, serve until SIGTERM or Ctrl-C.

use std::io::IsTerminal;
use std::process::ExitCode;

use meingpt_gateway::cli::{self, Command};
use meingpt_gateway::config::{AuthSource, Settings};
use meingpt_gateway::log_writer::{LineFormat, LogWriter};
use tracing_subscriber::EnvFilter;

fn main() -> ExitCode {
    // Writes out the access-log lines still buffered when `main` returns.
    let (writer, _flush) = match LogWriter::stderr() {
        Ok(log) => log,
        Err(error) => return fail(format!("cannot start the log writer: {error}"), 1),
    };
    tracing_subscriber::fmt()
        .with_env_filter(
            EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info")),
        )
        .with_writer(writer)
        .with_ansi(std::io::stderr().is_terminal())
        .event_format(LineFormat::default())
        .init();

    let command = match cli::parse(std::env::args_os().skip(1)) {
        Ok(command) => command,
        Err(error) => return fail(error, 2),
    };
    let env = |name: &str| std::env::var(name).ok();
    let load = |config: &Option<std::path::PathBuf>| match config {
        Some(path) => Settings::from_file(path, &env),
        None => Settings::from_env(&env),
    };
    match command {
        Command::Help => {
            println!("{}", cli::USAGE);
            ExitCode::SUCCESS
        }
        Command::Version => {
            println!("meingpt-gateway {}", env!("CARGO_PKG_VERSION"));
            ExitCode::SUCCESS
        }
        Command::Check { config } => match load(&config) {
            Ok(settings) => {
                match settings.auth {
                    AuthSource::Configured(_) => println!("ok"),
                    AuthSource::Development => println!(
                        "ok (no issuer configured: the gateway starts the development issuer, \
                         on this loopback address only)"
                    ),
                }
                ExitCode::SUCCESS
            }
            Err(error) => fail(error, 2),
        },
        Command::Run { config } => {
            let settings = match load(&config) {
                Ok(settings) => settings,
                Err(error) => return fail(error, 2),
            };
            // `app::run` starts one more single-threaded runtime per core.
            let runtime = match tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            {
                Ok(runtime) => runtime,
                Err(error) => return fail(format!("cannot start the runtime: {error}"), 1),
            };
            match runtime.block_on(meingpt_gateway::app::run(settings, shutdown_signal())) {
                Ok(()) => ExitCode::SUCCESS,
                Err(error) => fail(error, 1),
            }
        }
    }
}

fn fail(message: impl std::fmt::Display, code: u8) -> ExitCode {
    eprintln!("error: {message}");
    ExitCode::from(code)
}

/// SIGTERM or Ctrl-C.
async fn shutdown_signal() {
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        () = terminate => {}
    }
}

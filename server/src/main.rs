//! The `meerkat` binary: reads the config, then either manages users
//! (`meerkat user ...`) or serves with the tokio runtime.

mod cli;
mod federation_spec;
mod limits;
mod runtime;
mod spec;
mod storage;

use std::io::IsTerminal;
use std::process::ExitCode;

use clap::Parser;
use meerkat::{cert, config};
use tracing_subscriber::EnvFilter;

use cli::{Cli, Command};
use config::Config;

fn main() -> ExitCode {
    let cli = Cli::parse();
    let loaded = match &cli.config {
        Some(path) => Config::load(path),
        None => Config::embedded_default(),
    };
    let config = match loaded {
        Ok(c) => c,
        Err(e) => {
            eprintln!("{e}");
            return ExitCode::FAILURE;
        }
    };
    init_logging(&config);
    match cli.command {
        Some(Command::User(command)) => match cli::run_user(&config, command) {
            Ok(output) => {
                print!("{output}");
                if !output.is_empty() && !output.ends_with('\n') {
                    println!();
                }
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("meerkat: {e}");
                ExitCode::FAILURE
            }
        },
        None => serve(&config, cli.runtime.unwrap_or(config.runtime)),
    }
}

/// Logs go to standard error, so that `meerkat user list` output stays clean.
/// `RUST_LOG` wins over `[general] loglevel`, which wins over the default `info`.
/// Lines about a connection carry its span: id, type (`c2s`, `http`, `bosh`, with
/// the WebSocket transport once upgraded), peer, and JID once bound; as the text
/// prefix (`c2s{id=3 peer=.. jid=..}:`) or, with `log_format = "json"`, as the
/// `span` and `spans` fields of one JSON object per line.
fn init_logging(config: &Config) {
    let filter = EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| EnvFilter::new(config.loglevel.map_or("info", |l| l.filter_directive())));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match config.log_format {
        config::LogFormat::Text => builder.with_ansi(std::io::stderr().is_terminal()).init(),
        config::LogFormat::Json => builder.json().with_current_span(true).with_span_list(true).init(),
    }
}

fn serve(config: &Config, runtime: config::RuntimeKind) -> ExitCode {
    if !runtime::available().contains(&runtime) {
        eprintln!("meerkat: {}", runtime::RuntimeError::NotCompiled(runtime.name()));
        return ExitCode::FAILURE;
    }
    tracing::info!(
        version = env!("CARGO_PKG_VERSION"),
        config = %config.origin,
        hosts = ?config.hosts,
        runtime = runtime.name(),
        "starting meerkat"
    );
    match limits::raise_open_files() {
        Some(n) if n < 4096 => tracing::warn!(
            open_files = n,
            "the open-files limit caps the number of sessions; raise it (ulimit -n, LimitNOFILE=)"
        ),
        Some(n) => tracing::debug!(open_files = n, "open-files limit"),
        None => {}
    }
    let spec = match spec::build(config) {
        Ok(spec) => spec,
        Err(e) => {
            eprintln!("meerkat: cannot start: {e}");
            return ExitCode::FAILURE;
        }
    };
    if spec.c2s.is_empty() && spec.http.is_empty() {
        tracing::warn!("no [[listen.c2s]] listener is configured; clients cannot connect");
    }
    tracing::info!(threads = spec.threads, "hub shards and worker threads");
    match runtime::run(runtime, spec) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("meerkat: {e}");
            ExitCode::FAILURE
        }
    }
}

//! `eric`: run eric's servers and drive them from the shell.
//!
//! `eric serve` runs the Unix socket server and the HTTP server of
//! [`eric_socket`] over one set of channels; the other subcommands are clients. See
//! `eric --help` for the commands and their exit codes.
//!
//! Layout: [`cli`] defines the command line, [`serve`] the servers, [`client`] the
//! client verbs (over [`eric_socket::SocketClient`], and [`http_api`] for the verbs the
//! socket protocol lacks), [`error`] the failures and their exit codes.

mod cli;
mod client;
mod config;
mod error;
mod http_api;
mod paths;
mod payload;
mod serve;
mod signals;

use clap::CommandFactory;
use cli::{Cli, Command};
use client::Endpoints;
use eric_socket::SocketClient;
use error::CliError;
use std::process::ExitCode;

fn main() -> ExitCode {
    let (cli, matches) = match config::parse(std::env::args_os().collect()) {
        Ok(parsed) => parsed,
        Err(error) => return fail(&error),
    };
    if let Command::Serve(args) = &cli.command {
        if args.print_config {
            print!("{}", config::effective(&matches));
            return ExitCode::SUCCESS;
        }
    }
    let default_level = match cli.command {
        Command::Serve(_) => "info",
        _ => "warn",
    };
    init_logging(cli.log_level.as_deref().unwrap_or(default_level));
    match run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => fail(&error),
    }
}

/// Reports `error` on stderr; its exit code.
fn fail(error: &CliError) -> ExitCode {
    eprintln!("eric: error: {error}");
    ExitCode::from(error.exit as u8)
}

/// Logs to stderr; `RUST_LOG`, when set, wins over `--log-level`.
fn init_logging(level: &str) {
    use std::io::IsTerminal;
    use tracing_subscriber::EnvFilter;
    let filter = match std::env::var("RUST_LOG") {
        Ok(directives) if !directives.is_empty() => EnvFilter::builder().parse_lossy(directives),
        _ => EnvFilter::builder().parse_lossy(level),
    };
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .init();
}

fn run(cli: Cli) -> Result<(), CliError> {
    let endpoints = Endpoints {
        socket: SocketClient::new(&cli.socket),
        http: cli.http.clone(),
    };
    match cli.command {
        Command::Serve(args) => {
            multi_thread_runtime()?.block_on(serve::serve(&args, cli.socket, &cli.http))
        }
        Command::Completions { shell } => {
            clap_complete::generate(shell, &mut Cli::command(), "eric", &mut std::io::stdout());
            Ok(())
        }
        Command::Channel(command) => block_on(client::channel(&endpoints, command)),
        Command::Listener(command) => block_on(client::listener(&endpoints, command)),
        Command::Dispatch {
            channel,
            listener,
            msg_type,
            payload,
        } => block_on(client::dispatch(
            &endpoints,
            &channel,
            &listener,
            &msg_type,
            payload.payload.as_deref(),
        )),
        Command::Broadcast {
            channel,
            msg_type,
            payload,
        } => block_on(client::broadcast(
            &endpoints,
            &channel,
            &msg_type,
            payload.payload.as_deref(),
        )),
        Command::Listen {
            channel,
            listener,
            output,
        } => block_on(client::listen(&endpoints, &channel, &listener, &output)),
        Command::Watch { channel, output } => {
            block_on(client::watch(&endpoints, &channel, &output))
        }
    }
}

/// The servers' runtime: one worker per core.
fn multi_thread_runtime() -> Result<tokio::runtime::Runtime, CliError> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|error| CliError::io("cannot start the async runtime", error))
}

/// Runs a client command on a single-threaded runtime: one connection needs no more.
fn block_on<F: std::future::Future<Output = Result<(), CliError>>>(
    command: F,
) -> Result<(), CliError> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|error| CliError::io("cannot start the async runtime", error))?
        .block_on(command)
}

//! `eric`: run eric's servers and drive them from the shell.
//!
//! `eric serve` runs the Unix socket server and the HTTP server of
//! [`eric_socket`] over one set of channels; the other subcommands are clients. See
//! `eric --help` for the commands and their exit codes.
//!
//! Layout: [`cli`] defines the command line, [`serve`] the servers, [`client`] the
//! client verbs (over [`eric_socket::SocketClient`], and [`http_api`] for the verbs the
//! socket protocol lacks), [`error`] the failures and their exit codes.

mod access;
mod cli;
mod client;
mod config;
mod engine;
mod error;
mod http_api;
mod paths;
mod payload;
mod serve;
mod signals;
mod stats;
mod token;

use clap::CommandFactory;
use cli::{Cli, Command, LogFormat};
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
    init_logging(
        cli.log_level.as_deref().unwrap_or(default_level),
        cli.log_format,
    );
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

/// Logs to stderr, as text or as JSON lines; `RUST_LOG`, when set, wins over
/// `--log-level`. Either way a client's string cannot forge a line: the text format
/// logs them with `Debug` (escaped), the JSON format escapes every string.
fn init_logging(level: &str, format: LogFormat) {
    use std::io::IsTerminal;
    use tracing_subscriber::EnvFilter;
    let filter = match std::env::var("RUST_LOG") {
        Ok(directives) if !directives.is_empty() => EnvFilter::builder().parse_lossy(directives),
        _ => EnvFilter::builder().parse_lossy(level),
    };
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match format {
        LogFormat::Text => builder.with_ansi(std::io::stderr().is_terminal()).init(),
        LogFormat::Json => builder.json().with_ansi(false).init(),
    }
}

fn run(cli: Cli) -> Result<(), CliError> {
    let tls = match (cli.https, &cli.cacert) {
        (false, None) => None,
        (_, cacert) => Some(http_api::tls_client(cacert.as_deref())?),
    };
    let endpoints = Endpoints {
        socket: SocketClient::new(&cli.socket),
        http: cli.http.clone(),
        http_client: http_api::HttpClient {
            token: cli.token.clone(),
            tls,
        },
    };
    match cli.command {
        Command::Serve(args) => {
            let banner = cli.log_format == LogFormat::Text;
            multi_thread_runtime()?.block_on(serve::serve(&args, cli.socket, &cli.http, banner))
        }
        Command::Token(args) => {
            println!("{}", token::mint(&args)?);
            Ok(())
        }
        Command::Stats { json, watch } => block_on(stats::stats(&cli.http, json, watch)),
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

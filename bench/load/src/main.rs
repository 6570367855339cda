//! eric-load: load generator for eric's servers and for the Python reference's.
//!
//! It speaks the servers' wire protocols by hand, so the same client measures eric and
//! eric-sse 0.6.0.3 alike. Each run prints one JSON object on stdout:
//! `{"workload": ..., "count": ..., "seconds": ..., "rate": ..., ...}`.
//!
//! ```text
//! eric-load unix --socket PATH w5a [--n 3000] [--listeners 100]
//! eric-load unix --socket PATH w5b [--n 3000] [--clients 20] [--listeners 100]
//! eric-load unix --socket PATH w6  [--n 20000]
//! eric-load floor --socket PATH      # the least a server can do: W5's ceiling here
//! ```
//!
//! See bench/load/README.md for the workloads and how to run the reference's server.

mod floor;
mod report;
mod unix;

use clap::{Parser, Subcommand};
use std::process::ExitCode;

#[derive(Debug, Parser)]
#[command(name = "eric-load", version, about)]
struct Cli {
    #[command(subcommand)]
    transport: Transport,
}

#[derive(Debug, Subcommand)]
enum Transport {
    /// The socket command protocol over a Unix socket (eric's or the reference's server).
    Unix(unix::Args),
    /// Serves W5 with nothing but the system calls of one connection per command, to
    /// measure the machine's ceiling for any socket server (runs until killed).
    Floor(floor::Args),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let args = match cli.transport {
        Transport::Floor(args) => {
            return match floor::serve(args) {
                Ok(()) => ExitCode::SUCCESS,
                Err(error) => {
                    eprintln!("eric-load floor: {error}");
                    ExitCode::FAILURE
                }
            };
        }
        Transport::Unix(args) => args,
    };
    // One thread: the client stays on one core and leaves the other(s) to the server.
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a tokio runtime");
    let outcome = runtime.block_on(unix::run(args));
    match outcome {
        Ok(report) => {
            println!("{}", report.to_json());
            ExitCode::SUCCESS
        }
        Err(error) => {
            eprintln!("eric-load: {error}");
            ExitCode::FAILURE
        }
    }
}

//! `eric serve`: the Unix socket server and the HTTP server over one set of channels.

use crate::cli::{http_defaults, ServeArgs};
use crate::error::{CliError, Exit};
use crate::http_api::authority;
use crate::paths::{default_socket_path, ensure_private_dir};
use crate::signals;
use eric_core::{QueueConfig, Retention};
use eric_socket::http::MetricsServer;
use eric_socket::{
    ChannelSettings, HttpServer, HttpServerConfig, ShutdownHandle, UnixServer, UnixServerConfig,
};
use std::io;
use std::net::{SocketAddr, ToSocketAddrs};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use tokio::task::JoinHandle;

/// Runs both servers until Ctrl-C or SIGTERM, then stops them gracefully.
///
/// Both servers share one [`ChannelContainer`](eric_socket::ChannelContainer) (what one transport sends, the other
/// delivers) and one [`ShutdownHandle`]. If either server fails, the other is stopped
/// too and the failure is reported.
///
/// `banner`: print where it listens and how to try it, for a person; without it (JSON
/// logs, read by a collector) the same facts are logged.
pub async fn serve(
    args: &ServeArgs,
    socket: PathBuf,
    http: &str,
    banner: bool,
) -> Result<(), CliError> {
    // Before anything observable, so that a signal right after start-up is handled.
    let termination = signals::install().await?;
    let container = Arc::new(crate::engine::container(args, channel_settings(args))?);
    let shutdown = ShutdownHandle::new();

    // HTTP first: binding it cannot leave a file behind if the socket then fails.
    let http_server = if args.no_http {
        None
    } else {
        let mut config = http_config(args, parse_http_addr(http)?);
        // A name given to --http is one the server answers to, whatever it resolved to.
        config.allowed_hosts.extend(host_name(http));
        config.access = crate::access::access_config(args)?;
        config.tls = crate::access::tls_config(args);
        let addr = config.addr;
        crate::access::warn_if_open(&config);
        let server = HttpServer::bind(config, Arc::clone(&container))
            .await
            .map_err(|error| http_bind_error(addr, error))?;
        if let Some(reloader) = server.tls_reloader() {
            // Installed now, so that a SIGHUP right after start-up reloads rather than
            // ending the process.
            tokio::spawn(crate::access::reload_on_hangup(reloader)?);
        }
        Some(server.with_shutdown_handle(shutdown.clone()))
    };

    if socket == default_socket_path() {
        if let Some(dir) = socket.parent() {
            ensure_private_dir(dir)?;
        }
    }
    let unix_server = UnixServer::bind(unix_config(args, socket.clone()), Arc::clone(&container))
        .await
        .map_err(|error| unix_bind_error(&socket, error))?
        .with_shutdown_handle(shutdown.clone());

    let metrics_server = match &args.metrics_addr {
        Some(address) => {
            let addr = parse_addr(address, "--metrics-addr")?;
            let server = MetricsServer::bind(addr, Arc::clone(&container))
                .await
                .map_err(|error| metrics_bind_error(addr, error))?;
            Some(server.ready_until(shutdown.clone()))
        }
        None => None,
    };

    let http_addr = http_server.as_ref().map(HttpServer::local_addr);
    if banner {
        eprint!(
            "{}",
            banner_text(&socket, http_addr, http, args.tls_cert.is_some())
        );
    } else {
        tracing::info!(
            version = env!("CARGO_PKG_VERSION"),
            socket = %socket.display(),
            http = ?http_addr,
            "eric is serving"
        );
    }

    tokio::spawn(stop_on_signal(termination, shutdown.clone()));
    // The metrics server outlives the others: /readyz says 503 while they drain.
    let metrics = metrics_server.map(|server| {
        let stop = server.shutdown_handle();
        (stop, tokio::spawn(server.run()))
    });
    let unix = tokio::spawn(unix_server.run());
    let http = http_server.map(|server| tokio::spawn(server.run()));
    let (unix, http) = tokio::join!(finish("socket server", unix, &shutdown), async {
        match http {
            Some(task) => finish("HTTP server", task, &shutdown).await,
            None => Ok(()),
        }
    });
    let metrics = match metrics {
        Some((stop, task)) => {
            stop.shutdown();
            finish("metrics server", task, &stop).await
        }
        None => Ok(()),
    };
    // The listeners' consumed positions, stored before the process goes.
    container.flush_engine();
    unix.and(http).and(metrics)
}

/// Waits for a server; whatever its outcome, the other server stops too.
async fn finish(
    name: &str,
    task: JoinHandle<io::Result<()>>,
    shutdown: &ShutdownHandle,
) -> Result<(), CliError> {
    let outcome = task.await;
    shutdown.shutdown();
    match outcome {
        Ok(Ok(())) => Ok(()),
        Ok(Err(error)) => Err(CliError::io(format_args!("the {name} failed"), error)),
        Err(panic) => Err(CliError::new(
            Exit::Other,
            format!("the {name} crashed: {panic}"),
        )),
    }
}

/// Stops the servers at the first signal; quits at once at the second.
async fn stop_on_signal(termination: signals::Termination, shutdown: ShutdownHandle) {
    termination.await;
    tracing::info!("stopping: finishing open connections (send the signal again to quit now)");
    shutdown.shutdown();
    if let Ok(again) = signals::install().await {
        again.await;
        tracing::warn!("second signal: quitting without waiting");
        std::process::exit(130);
    }
}

/// The settings of every channel the servers create.
fn channel_settings(args: &ServeArgs) -> ChannelSettings {
    let mut queue = match args.queue_capacity {
        Some(capacity) => QueueConfig::bounded(capacity, args.overflow.into()),
        None => QueueConfig::unbounded(),
    };
    queue.max_bytes = Some(args.max_lag_bytes).filter(|&bytes| bytes > 0);
    let mut retention = Retention::entries(args.history);
    if !args.history_age.0.is_zero() {
        retention = retention.max_age(args.history_age.0);
    }
    ChannelSettings {
        retry_ms: args.retry_ms,
        queue,
        retention,
        max_queued_bytes: Some(args.max_queued_bytes).filter(|&bytes| bytes > 0),
    }
}

fn unix_config(args: &ServeArgs, path: PathBuf) -> UnixServerConfig {
    let mut config = UnixServerConfig::new(path);
    config.mode = args.socket_mode.0;
    config.read_timeout = args.read_timeout.0;
    config.max_command_bytes = args.max_command_bytes;
    config.max_connections = args.max_connections;
    config.shutdown_grace = args.shutdown_grace.0;
    config
}

fn http_config(args: &ServeArgs, addr: SocketAddr) -> HttpServerConfig {
    let mut config = HttpServerConfig::new(addr);
    config.max_body_bytes = args.max_body_bytes;
    config.max_streams = args.max_streams;
    config.max_connections = args.http_max_connections;
    config.header_read_timeout = args.header_read_timeout.0;
    config.body_read_timeout = args.body_read_timeout.0;
    config.cors_allowed_origins = args.cors_origins.clone();
    config.allowed_hosts = args.allowed_hosts.clone();
    config.shutdown_grace = args.shutdown_grace.0;
    let keep_alive = Some(args.keep_alive.0).filter(|interval| !interval.is_zero());
    config.sse = config
        .sse
        .with_keep_alive(keep_alive)
        .with_retry_floor_ms(args.retry_floor_ms);
    config
}

/// Reads `--http`: `127.0.0.1:8080`, `localhost:8080`, `http://[::1]:8080/`.
fn parse_http_addr(address: &str) -> Result<SocketAddr, CliError> {
    parse_addr(address, "--http")
}

/// Reads the address of `flag` as `--http` is read.
fn parse_addr(address: &str, flag: &str) -> Result<SocketAddr, CliError> {
    let authority = authority(address);
    let hint = if flag == "--http" {
        ", or pass --no-http"
    } else {
        ""
    };
    let invalid = |why: String| {
        CliError::invalid_input(format!(
            "{flag} {address}: {why}; write HOST:PORT, e.g. 127.0.0.1:8080{hint}"
        ))
    };
    authority
        .to_socket_addrs()
        .map_err(|error| invalid(error.to_string()))?
        .next()
        .ok_or_else(|| invalid("the name has no address".to_owned()))
}

/// The host name of `--http` when it is a name rather than an address
/// (`eric.internal:8080`).
fn host_name(address: &str) -> Option<String> {
    let authority = authority(address);
    let host = authority
        .rsplit_once(':')
        .map_or(authority, |(host, _port)| host);
    let is_address = host.starts_with('[') || host.parse::<std::net::IpAddr>().is_ok();
    (!host.is_empty() && !is_address).then(|| host.to_owned())
}

fn unix_bind_error(path: &Path, error: io::Error) -> CliError {
    let hint = match error.kind() {
        io::ErrorKind::AddrInUse => {
            "; stop that server first, or choose another path with --socket"
        }
        io::ErrorKind::NotFound => {
            "; create its directory first, or choose another path with --socket"
        }
        io::ErrorKind::PermissionDenied => "; choose a path you may write to with --socket",
        _ => "",
    };
    // The server's own message for a live socket names the path already.
    let message = if error.kind() == io::ErrorKind::AddrInUse {
        format!("{error}{hint}")
    } else {
        format!("cannot listen at {}: {error}{hint}", path.display())
    };
    CliError::new(Exit::Io, message)
}

fn http_bind_error(addr: SocketAddr, error: io::Error) -> CliError {
    let hint = match error.kind() {
        io::ErrorKind::AddrInUse => {
            " (another program listens there); choose another address with --http, or pass --no-http"
        }
        io::ErrorKind::PermissionDenied => {
            "; ports below 1024 need privileges: choose another with --http"
        }
        _ => "",
    };
    CliError::new(
        Exit::Io,
        format!("cannot listen on http://{addr}: {error}{hint}"),
    )
}

fn metrics_bind_error(addr: SocketAddr, error: io::Error) -> CliError {
    CliError::new(
        Exit::Io,
        format!("cannot listen on http://{addr} (--metrics-addr): {error}"),
    )
}

/// What `serve` prints on stderr once it listens: where, and how to try it.
fn banner_text(socket: &Path, http: Option<SocketAddr>, http_flag: &str, tls: bool) -> String {
    let scheme = if tls { "https" } else { "http" };
    let curl = if tls { "curl -Nk" } else { "curl -N" };
    // The client commands need the same --socket / --http as the server, unless default.
    let mut flags = String::new();
    if socket != default_socket_path() {
        flags.push_str(&format!(
            " --socket {}",
            shell_quote(&socket.to_string_lossy())
        ));
    }
    let mut text = format!(
        "eric {} is serving\n  socket  {}\n",
        env!("CARGO_PKG_VERSION"),
        socket.display()
    );
    let watch = match http {
        Some(addr) => {
            if authority(http_flag) != http_defaults().addr.to_string() {
                flags.push_str(&format!(" --http {addr}"));
            }
            text.push_str(&format!("  http    {scheme}://{addr}\n"));
            format!("  # watch it (or: eric{flags} watch 1)\n  {curl} {scheme}://{addr}/watch/1\n")
        }
        None => {
            text.push_str("  http    off (--no-http)\n");
            format!("  # watch it\n  eric{flags} watch 1\n")
        }
    };
    text.push_str(&format!(
        "Try it from another terminal:\n  \
         # create a channel; prints its id, e.g. 1\n  eric{flags} channel create\n\
         {watch}  \
         # broadcast to it\n  eric{flags} broadcast 1 greeting '{{\"hi\":1}}'\n"
    ));
    text.push_str("Stop with Ctrl-C.\n");
    text
}

/// Quotes `text` for a POSIX shell when it needs it.
fn shell_quote(text: &str) -> String {
    if text
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || "/._-+:@%".contains(c))
    {
        text.to_owned()
    } else {
        format!("'{}'", text.replace('\'', r"'\''"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cli::{Cli, Command};
    use clap::Parser;
    use eric_core::OverflowPolicy;
    use std::time::Duration;

    fn serve_args(flags: &[&str]) -> ServeArgs {
        let cli = Cli::try_parse_from(["eric", "serve"].iter().chain(flags)).unwrap();
        match cli.command {
            Command::Serve(args) => *args,
            _ => unreachable!(),
        }
    }

    #[test]
    fn queue_flags_make_the_channel_settings() {
        let settings = channel_settings(&serve_args(&[
            "--queue-capacity",
            "100",
            "--overflow",
            "drop-oldest",
            "--history",
            "7",
            "--history-age",
            "2m",
            "--retry-ms",
            "250",
        ]));
        assert_eq!(settings.queue.capacity, Some(100));
        assert_eq!(settings.queue.overflow, OverflowPolicy::DropOldest);
        assert_eq!(
            settings.retention,
            Retention::entries(7).max_age(Duration::from_secs(120))
        );
        assert_eq!(settings.retry_ms, 250);
    }

    #[test]
    fn byte_bounds_come_from_their_flags_and_zero_lifts_them() {
        let settings = channel_settings(&serve_args(&[
            "--max-lag-bytes",
            "4096",
            "--max-queued-bytes",
            "0",
        ]));
        assert_eq!(settings.queue.max_bytes, Some(4096));
        assert_eq!(settings.max_queued_bytes, None);
        let settings = channel_settings(&serve_args(&["--max-lag-bytes", "0"]));
        assert_eq!(settings.queue.max_bytes, None);
    }

    #[test]
    fn defaults_are_the_libraries_defaults() {
        let args = serve_args(&[]);
        let settings = channel_settings(&args);
        // The server bounds the bytes queued, where the library does not; all else is
        // the library's.
        assert_eq!(
            settings.queue.max_bytes,
            Some(crate::cli::DEFAULT_MAX_LAG_BYTES)
        );
        assert_eq!(
            settings.max_queued_bytes,
            Some(crate::cli::DEFAULT_MAX_QUEUED_BYTES)
        );
        let unbounded = ChannelSettings {
            queue: QueueConfig {
                max_bytes: None,
                ..settings.queue
            },
            max_queued_bytes: None,
            ..settings
        };
        assert_eq!(unbounded, ChannelSettings::default());
        let unix = unix_config(&args, "/x".into());
        let reference = UnixServerConfig::new("/x");
        assert_eq!(unix.mode, reference.mode);
        assert_eq!(unix.read_timeout, reference.read_timeout);
        assert_eq!(unix.max_command_bytes, reference.max_command_bytes);
        assert_eq!(unix.max_connections, reference.max_connections);
        assert_eq!(unix.shutdown_grace, reference.shutdown_grace);
        let cli = Cli::try_parse_from(["eric", "serve"]).unwrap();
        let addr = parse_http_addr(&cli.http).unwrap();
        assert_eq!(addr, HttpServerConfig::default().addr);
        let http = http_config(&args, addr);
        let reference = HttpServerConfig::new(addr);
        assert_eq!(http.max_connections, reference.max_connections);
        assert_eq!(http.shutdown_grace, reference.shutdown_grace);
        assert_eq!(http.body_read_timeout, reference.body_read_timeout);
        assert_eq!(http.max_body_bytes, reference.max_body_bytes);
        assert_eq!(http.max_streams, reference.max_streams);
        assert_eq!(http.sse.keep_alive, reference.sse.keep_alive);
        assert_eq!(http.sse.retry_floor_ms, reference.sse.retry_floor_ms);
        assert_eq!(http.header_read_timeout, reference.header_read_timeout);
    }

    #[test]
    fn http_flags_make_the_http_config() {
        let args = serve_args(&[
            "--keep-alive",
            "0",
            "--retry-floor-ms",
            "3000",
            "--cors-origin",
            "*",
            "--max-streams",
            "9",
        ]);
        let config = http_config(&args, "127.0.0.1:1".parse().unwrap());
        assert_eq!(config.sse.keep_alive, None);
        assert_eq!(config.sse.retry_floor_ms, 3000);
        assert_eq!(config.cors_allowed_origins, ["*"]);
        assert_eq!(config.max_streams, 9);
        let args = serve_args(&["--keep-alive", "30s"]);
        let config = http_config(&args, "127.0.0.1:1".parse().unwrap());
        assert_eq!(config.sse.keep_alive, Some(Duration::from_secs(30)));
    }

    #[test]
    fn allowed_hosts_come_from_the_flag_and_the_name_of_the_http_address() {
        let args = serve_args(&[
            "--allowed-host",
            "a.example",
            "--allowed-host",
            "b.example:443",
        ]);
        let config = http_config(&args, "127.0.0.1:1".parse().unwrap());
        assert_eq!(config.allowed_hosts, ["a.example", "b.example:443"]);
        assert_eq!(
            host_name("eric.internal:8080").as_deref(),
            Some("eric.internal")
        );
        assert_eq!(
            host_name("http://localhost:9000/").as_deref(),
            Some("localhost")
        );
        assert_eq!(host_name("127.0.0.1:8080"), None);
        assert_eq!(host_name("[::1]:8080"), None);
    }

    #[test]
    fn http_addresses_accept_urls_and_refuse_nonsense() {
        assert_eq!(
            parse_http_addr("http://127.0.0.1:9000/").unwrap(),
            "127.0.0.1:9000".parse().unwrap()
        );
        let error = parse_http_addr("nonsense").unwrap_err();
        assert_eq!(error.exit, Exit::InvalidInput);
        assert!(error.message.contains("HOST:PORT"), "{error}");
    }

    #[test]
    fn the_banner_repeats_non_default_flags_in_its_examples() {
        let text = banner_text(
            Path::new("/tmp/my dir/e.sock"),
            Some("127.0.0.1:9000".parse().unwrap()),
            "127.0.0.1:9000",
            false,
        );
        assert!(
            text.contains(
                "eric --socket '/tmp/my dir/e.sock' --http 127.0.0.1:9000 channel create"
            ),
            "{text}"
        );
        assert!(
            text.contains("curl -N http://127.0.0.1:9000/watch/1"),
            "{text}"
        );
    }
}

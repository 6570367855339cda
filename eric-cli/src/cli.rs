//! The command line: every subcommand, flag and environment variable of `eric`.

use crate::error::EXIT_CODES_HELP;
use crate::http_api::authority;
use crate::paths::default_socket_path;
use clap::{Args, Parser, Subcommand, ValueEnum};
use eric_core::OverflowPolicy;
use eric_socket::{HttpServerConfig, UnixServerConfig};
use std::fmt;
use std::path::PathBuf;
use std::str::FromStr;
use std::time::Duration;

const ABOUT: &str = "Channels, listeners and Server-Sent Events: run an eric server and drive it";

const LONG_ABOUT: &str = "\
Channels, listeners and Server-Sent Events: run an eric server and drive it.

`eric serve` runs the Unix socket server (the eric-sse 0.6.0.3 command protocol) and
the HTTP server (eric-api's routes, with text/event-stream streams) over one set of
channels. The other subcommands are clients of a running server.

Transports: `channel create` (without --id), `listener add`, `dispatch`, `broadcast`,
`listen` and `watch` speak the socket protocol at --socket. That protocol has no verb
to choose a channel id, list or remove channels, or remove listeners: `channel create
--id`, `channel list`, `channel rm` and `listener rm` use the HTTP API at --http
instead, so they need a server started with HTTP (the default).";

const AFTER_HELP: &str = "\
Quick start:
  eric serve &                         # socket and http://127.0.0.1:8080
  eric channel create                  # prints the new channel id, e.g. 1
  eric watch 1                         # or: curl -N http://127.0.0.1:8080/watch/1
  eric broadcast 1 greeting '{\"hi\":1}'";

/// The `eric` command.
#[derive(Debug, Parser)]
#[command(
    name = "eric",
    version,
    about = ABOUT,
    long_about = LONG_ABOUT,
    after_help = format!("{AFTER_HELP}\n\n{EXIT_CODES_HELP}"),
    propagate_version = true,
)]
pub struct Cli {
    /// The server's Unix socket: where `serve` listens, where clients connect.
    #[arg(
        long,
        global = true,
        env = "ERIC_SOCKET",
        value_name = "PATH",
        default_value_os_t = default_socket_path()
    )]
    pub socket: PathBuf,

    /// The server's HTTP address: where `serve` listens, where the HTTP-only verbs connect.
    #[arg(
        long,
        global = true,
        env = "ERIC_HTTP",
        value_name = "ADDR",
        default_value_t = http_defaults().addr.to_string(),
        value_parser = parse_http_address
    )]
    pub http: String,

    /// A JWT for the HTTP verbs (sent as `Authorization: Bearer`), for a server that
    /// checks tokens.
    #[arg(
        long,
        global = true,
        env = "ERIC_TOKEN",
        value_name = "JWT",
        hide_env_values = true
    )]
    pub token: Option<String>,

    /// Speak HTTPS to --http (the HTTP verbs), trusting the system's CA certificates.
    #[arg(long, global = true, env = "ERIC_HTTPS")]
    pub https: bool,

    /// Speak HTTPS to --http, trusting the CA certificates (PEM) in PATH only.
    #[arg(long, global = true, env = "ERIC_CACERT", value_name = "PATH")]
    pub cacert: Option<PathBuf>,

    /// Log filter: a level (error, warn, info, debug, trace) or tracing directives
    /// (`eric_socket=debug,info`) [default: info for `serve`, warn for the clients].
    /// RUST_LOG, when set, wins.
    #[arg(
        long,
        global = true,
        env = "ERIC_LOG_LEVEL",
        value_name = "FILTER",
        value_parser = parse_log_filter
    )]
    pub log_level: Option<String>,

    /// How log lines are written: `text` for people, `json` (one object a line) for log
    /// collectors.
    #[arg(
        long,
        global = true,
        env = "ERIC_LOG_FORMAT",
        value_name = "FORMAT",
        value_enum,
        default_value_t = LogFormat::Text
    )]
    pub log_format: LogFormat,

    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the Unix socket server and the HTTP server until Ctrl-C or SIGTERM.
    Serve(Box<ServeArgs>),
    /// Create, list and remove channels.
    #[command(subcommand)]
    Channel(ChannelCommand),
    /// Add and remove listeners.
    #[command(subcommand)]
    Listener(ListenerCommand),
    /// Queue a message for one listener (socket verb `d`).
    Dispatch {
        /// Channel id.
        channel: String,
        /// Listener id.
        listener: String,
        /// Message type (the SSE `event`).
        #[arg(value_name = "TYPE")]
        msg_type: String,
        #[command(flatten)]
        payload: PayloadArg,
    },
    /// Queue a message for every listener of a channel (socket verb `b`).
    Broadcast {
        /// Channel id.
        channel: String,
        /// Message type (the SSE `event`).
        #[arg(value_name = "TYPE")]
        msg_type: String,
        #[command(flatten)]
        payload: PayloadArg,
    },
    /// Start a listener and print its queue as it fills (socket verb `l`).
    Listen {
        /// Channel id.
        channel: String,
        /// Listener id (from `eric listener add`).
        listener: String,
        #[command(flatten)]
        output: StreamOutput,
    },
    /// Print a channel's messages through a new listener that lives as long as this
    /// command (socket verb `w`).
    Watch {
        /// Channel id.
        channel: String,
        #[command(flatten)]
        output: StreamOutput,
    },
    /// Print a JWT for a server that checks tokens (`eric serve --jwt-secret`), e.g.
    /// `eric token --secret S --publish 'news.*' --subscribe '*' --ttl 1h`.
    Token(TokenArgs),
    /// Print the server's figures (over HTTP, from `GET /monitor/events`): the gauges,
    /// the counters, the rates and the busiest channels.
    Stats {
        /// Print each snapshot as one JSON object (a line).
        #[arg(long)]
        json: bool,
        /// Keep printing a fresh snapshot every second, until interrupted.
        #[arg(long)]
        watch: bool,
    },
    /// Print a shell completion script (e.g. `eric completions bash > /etc/bash_completion.d/eric`).
    Completions {
        /// The shell.
        shell: clap_complete::Shell,
    },
}

/// `eric channel ...`
#[derive(Debug, Subcommand)]
pub enum ChannelCommand {
    /// Create a channel and print its id (socket verb `c`; with --id, HTTP `PUT /create`).
    Create {
        /// Choose the channel's id instead of taking the next number. Uses the HTTP API.
        #[arg(long)]
        id: Option<String>,
    },
    /// Print the channel ids, one a line (HTTP `GET /channels`; with --listeners, `GET /`).
    #[command(alias = "ls")]
    List {
        /// Print each channel's listener ids after it: `CHANNEL: LISTENER...`.
        #[arg(long, short)]
        listeners: bool,
        /// Print the server's JSON answer instead.
        #[arg(long)]
        json: bool,
    },
    /// Remove a channel; its listeners' streams end (HTTP `DELETE /channel/ID`).
    #[command(alias = "remove")]
    Rm {
        /// Channel id.
        channel: String,
    },
}

/// `eric listener ...`
#[derive(Debug, Subcommand)]
pub enum ListenerCommand {
    /// Add a listener to a channel and print its id (socket verb `r`).
    Add {
        /// Channel id.
        channel: String,
    },
    /// Remove a listener; its stream ends (HTTP `DELETE /listener/CHANNEL/LISTENER`).
    #[command(alias = "remove")]
    Rm {
        /// Channel id.
        channel: String,
        /// Listener id.
        listener: String,
    },
}

/// The payload argument of `dispatch` and `broadcast`.
#[derive(Debug, Args)]
pub struct PayloadArg {
    /// The payload, as JSON (`'{"a":1}'`, `'"text"'`, `42`, `null`); `-` reads it from
    /// stdin. Absent: null.
    #[arg(value_name = "PAYLOAD", allow_hyphen_values = true)]
    pub payload: Option<String>,
}

/// How `listen` and `watch` print events.
#[derive(Debug, Args)]
pub struct StreamOutput {
    /// Print each event as its JSON line (`{"event":..,"retry":..,"data":..}`) instead of
    /// `EVENT DATA`.
    #[arg(long)]
    pub json: bool,
    /// Exit after this many events.
    #[arg(long, short = 'n', value_name = "N")]
    pub count: Option<u64>,
}

/// `eric token`: what the token grants, for how long, signed with what.
#[derive(Debug, Args)]
pub struct TokenArgs {
    /// Sign with this shared secret (HS256): the server's --jwt-secret.
    #[arg(
        long,
        env = "ERIC_JWT_SECRET",
        value_name = "SECRET",
        hide_env_values = true,
        conflicts_with = "private_key"
    )]
    pub secret: Option<String>,
    /// Sign with this PEM private key (RSA: RS256, EC P-256: ES256, Ed25519: EdDSA); the
    /// server holds its public key (--jwt-public-key).
    #[arg(long, value_name = "PATH")]
    pub private_key: Option<std::path::PathBuf>,
    /// A channel id or glob (`news.*`, `*`) the token may publish to; repeat the flag.
    #[arg(long, value_name = "PATTERN")]
    pub publish: Vec<String>,
    /// A channel id or glob the token may subscribe to; repeat the flag.
    #[arg(long, value_name = "PATTERN")]
    pub subscribe: Vec<String>,
    /// Every right on every channel.
    #[arg(long)]
    pub admin: bool,
    /// How long the token is valid (`90s`, `15m`, `1h`).
    #[arg(long, value_name = "DURATION", default_value = "1h")]
    pub ttl: HumanDuration,
    /// The `iss` claim (the server's --jwt-issuer).
    #[arg(long, value_name = "ISS")]
    pub issuer: Option<String>,
    /// The `aud` claim (the server's --jwt-audience).
    #[arg(long, value_name = "AUD")]
    pub audience: Option<String>,
    /// The `sub` claim: who the token is for (eric does not read it).
    #[arg(long, value_name = "SUB")]
    pub subject: Option<String>,
}

/// Every setting of `eric serve`.
#[derive(Debug, Args)]
pub struct ServeArgs {
    /// Read the settings from this TOML file: its keys are the long flags below and
    /// the global ones (`http = "127.0.0.1:8080"`, `history = 100`,
    /// `cors-origin = ["https://app.example"]`, `no-http = true`). A flag or its
    /// environment variable wins over the file.
    #[arg(
        long,
        env = "ERIC_CONFIG",
        value_name = "PATH",
        help_heading = "Configuration"
    )]
    pub config: Option<PathBuf>,

    /// Print the effective settings (defaults, file, environment and flags together) as
    /// a TOML file for --config, and exit.
    #[arg(long, help_heading = "Configuration")]
    pub print_config: bool,

    /// Permission bits of the socket file, in octal (600: only you may connect).
    #[arg(
        long,
        env = "ERIC_SOCKET_MODE",
        value_name = "OCTAL",
        default_value_t = SocketMode(unix_defaults().mode),
        help_heading = "Unix socket server"
    )]
    pub socket_mode: SocketMode,

    /// The largest command accepted, in bytes.
    #[arg(
        long,
        env = "ERIC_MAX_COMMAND_BYTES",
        value_name = "BYTES",
        default_value_t = unix_defaults().max_command_bytes,
        help_heading = "Unix socket server"
    )]
    pub max_command_bytes: usize,

    /// How long a client may take to send its command (`10`, `10s`, `500ms`, `1m`).
    #[arg(
        long,
        env = "ERIC_READ_TIMEOUT",
        value_name = "DURATION",
        default_value_t = HumanDuration(unix_defaults().read_timeout),
        help_heading = "Unix socket server"
    )]
    pub read_timeout: HumanDuration,

    /// Connections served at once; more wait to be accepted.
    #[arg(
        long,
        env = "ERIC_MAX_CONNECTIONS",
        value_name = "N",
        default_value_t = unix_defaults().max_connections,
        value_parser = parse_positive,
        help_heading = "Unix socket server"
    )]
    pub max_connections: usize,

    /// How long shutdown waits for open connections and streams before cutting them
    /// (for both servers).
    #[arg(
        long,
        env = "ERIC_SHUTDOWN_GRACE",
        value_name = "DURATION",
        default_value_t = HumanDuration(unix_defaults().shutdown_grace),
        help_heading = "Unix socket server"
    )]
    pub shutdown_grace: HumanDuration,

    /// Do not start the HTTP server (the HTTP-only client verbs will not work).
    #[arg(long, env = "ERIC_NO_HTTP", help_heading = "HTTP server")]
    pub no_http: bool,

    /// Also serve /metrics, /healthz and /readyz on this address (HOST:PORT), apart from
    /// the traffic; it answers /readyz 503 while the servers shut down.
    #[arg(
        long,
        env = "ERIC_METRICS_ADDR",
        value_name = "ADDR",
        value_parser = parse_http_address,
        help_heading = "HTTP server"
    )]
    pub metrics_addr: Option<String>,

    /// The largest request body accepted, in bytes.
    #[arg(
        long,
        env = "ERIC_MAX_BODY_BYTES",
        value_name = "BYTES",
        default_value_t = http_defaults().max_body_bytes,
        help_heading = "HTTP server"
    )]
    pub max_body_bytes: usize,

    /// Event streams open at once; more are answered 503.
    #[arg(
        long,
        env = "ERIC_MAX_STREAMS",
        value_name = "N",
        default_value_t = http_defaults().max_streams,
        value_parser = parse_positive,
        help_heading = "HTTP server"
    )]
    pub max_streams: usize,

    /// HTTP connections served at once; more wait to be accepted.
    #[arg(
        long,
        env = "ERIC_HTTP_MAX_CONNECTIONS",
        value_name = "N",
        default_value_t = http_defaults().max_connections,
        value_parser = parse_positive,
        help_heading = "HTTP server"
    )]
    pub http_max_connections: usize,

    /// Silence after which an idle stream gets a keep-alive comment; 0 sends none.
    #[arg(
        long,
        env = "ERIC_KEEP_ALIVE",
        value_name = "DURATION",
        default_value_t = HumanDuration(http_defaults().sse.keep_alive.unwrap_or_default()),
        help_heading = "HTTP server"
    )]
    pub keep_alive: HumanDuration,

    /// The least `retry:` sent to browsers at the start of a stream, in milliseconds.
    #[arg(
        long,
        env = "ERIC_RETRY_FLOOR_MS",
        value_name = "MS",
        default_value_t = http_defaults().sse.retry_floor_ms,
        help_heading = "HTTP server"
    )]
    pub retry_floor_ms: u64,

    /// How long a client may take to send a request head (also the idle timeout of a
    /// keep-alive connection).
    #[arg(
        long,
        env = "ERIC_HEADER_READ_TIMEOUT",
        value_name = "DURATION",
        default_value_t = HumanDuration(http_defaults().header_read_timeout),
        help_heading = "HTTP server"
    )]
    pub header_read_timeout: HumanDuration,

    /// How long a client may take to send a request body.
    #[arg(
        long,
        env = "ERIC_BODY_READ_TIMEOUT",
        value_name = "DURATION",
        default_value_t = HumanDuration(http_defaults().body_read_timeout),
        help_heading = "HTTP server"
    )]
    pub body_read_timeout: HumanDuration,

    /// An origin allowed by CORS (`https://app.example`, or `*`); repeat the flag, or
    /// separate with commas in the variable. None: no CORS headers.
    #[arg(
        long = "cors-origin",
        env = "ERIC_CORS_ORIGINS",
        value_name = "ORIGIN",
        value_delimiter = ',',
        help_heading = "HTTP server"
    )]
    pub cors_origins: Vec<String>,

    /// A `Host` name the HTTP server answers besides the loopback names and its own
    /// address (`events.example.org`, `NAME:PORT`, or `*` for any); repeat the flag, or
    /// separate with commas in the variable. Other names are answered 421, which keeps
    /// pages of other sites out (DNS rebinding). Behind a proxy, the name the proxy
    /// passes on.
    #[arg(
        long = "allowed-host",
        env = "ERIC_ALLOWED_HOSTS",
        value_name = "NAME",
        value_delimiter = ',',
        help_heading = "HTTP server"
    )]
    pub allowed_hosts: Vec<String>,

    /// Verify JWT bearer tokens signed with this shared secret (HS256). Prefer the
    /// variable: a flag shows in the process list. Without a key, every HTTP request is
    /// served.
    #[arg(
        long,
        env = "ERIC_JWT_SECRET",
        value_name = "SECRET",
        hide_env_values = true,
        conflicts_with = "jwt_public_key",
        help_heading = "Access"
    )]
    pub jwt_secret: Option<String>,

    /// Verify JWT bearer tokens with this PEM public key: RSA (RS256), EC P-256 (ES256)
    /// or Ed25519 (EdDSA), the algorithm fixed by the key.
    #[arg(
        long,
        env = "ERIC_JWT_PUBLIC_KEY",
        value_name = "PATH",
        help_heading = "Access"
    )]
    pub jwt_public_key: Option<PathBuf>,

    /// The `iss` every token must carry.
    #[arg(
        long,
        env = "ERIC_JWT_ISSUER",
        value_name = "ISS",
        help_heading = "Access"
    )]
    pub jwt_issuer: Option<String>,

    /// The `aud` every token must carry (or list).
    #[arg(
        long,
        env = "ERIC_JWT_AUDIENCE",
        value_name = "AUD",
        help_heading = "Access"
    )]
    pub jwt_audience: Option<String>,

    /// Let clients without a token subscribe (streams, listings, POST /subscribe);
    /// publishing still needs a token.
    #[arg(long, env = "ERIC_ANONYMOUS_SUBSCRIBE", help_heading = "Access")]
    pub anonymous_subscribe: bool,

    /// Also read tokens from the `access_token` query parameter. Off by default: URLs
    /// end up in access logs, proxy logs and browser history.
    #[arg(long, env = "ERIC_JWT_QUERY_TOKEN", help_heading = "Access")]
    pub jwt_query_token: bool,

    /// Serve HTTPS with this certificate chain (PEM, the server's certificate first):
    /// HTTP/2 or HTTP/1.1 as the client chooses. Re-read on SIGHUP.
    #[arg(
        long,
        env = "ERIC_TLS_CERT",
        value_name = "PATH",
        requires = "tls_key",
        help_heading = "TLS"
    )]
    pub tls_cert: Option<PathBuf>,

    /// The private key of --tls-cert (PEM). Re-read on SIGHUP.
    #[arg(
        long,
        env = "ERIC_TLS_KEY",
        value_name = "PATH",
        requires = "tls_cert",
        help_heading = "TLS"
    )]
    pub tls_key: Option<PathBuf>,

    /// Bound every listener's queue to N messages [default: unbounded].
    #[arg(
        long,
        env = "ERIC_QUEUE_CAPACITY",
        value_name = "N",
        value_parser = parse_positive,
        help_heading = "Channels and queues"
    )]
    pub queue_capacity: Option<usize>,

    /// What a full bounded queue does with a new message: refuse it, drop the oldest
    /// queued one, or disconnect the listener. Every loss is counted.
    #[arg(
        long,
        env = "ERIC_OVERFLOW",
        value_name = "POLICY",
        value_enum,
        default_value_t = Overflow::from(OverflowPolicy::default()),
        help_heading = "Channels and queues"
    )]
    pub overflow: Overflow,

    /// The most bytes queued for one stream: a stream further behind is ended with an
    /// `_eric_error` `too_slow` event and resumes from the channel's log when it
    /// reconnects (`Last-Event-ID`). 0: no bound.
    #[arg(
        long,
        env = "ERIC_MAX_LAG_BYTES",
        value_name = "BYTES",
        default_value_t = DEFAULT_MAX_LAG_BYTES,
        help_heading = "Channels and queues"
    )]
    pub max_lag_bytes: usize,

    /// The most bytes queued over every stream of the server: while the queues hold
    /// that much, publishes are refused (HTTP 503, a socket `QueueFullException`) until
    /// subscribers catch up. 0: no bound.
    #[arg(
        long,
        env = "ERIC_MAX_QUEUED_BYTES",
        value_name = "BYTES",
        default_value_t = DEFAULT_MAX_QUEUED_BYTES,
        help_heading = "Channels and queues"
    )]
    pub max_queued_bytes: usize,

    /// Messages each channel retains for resume (`Last-Event-ID`), its last N;
    /// `PUT /create?history_size=N` sets it per channel.
    #[arg(
        long,
        env = "ERIC_HISTORY",
        value_name = "N",
        default_value_t = eric_sse::DEFAULT_HISTORY,
        help_heading = "Channels and queues"
    )]
    pub history: usize,

    /// The oldest a retained message may be (0: no age bound);
    /// `PUT /create?history_age=SECONDS` sets it per channel.
    #[arg(
        long,
        env = "ERIC_HISTORY_AGE",
        value_name = "DURATION",
        default_value_t = HumanDuration(Duration::ZERO),
        help_heading = "Channels and queues"
    )]
    pub history_age: HumanDuration,

    /// Keep channels, listeners, queues and logs in the Redis at URL (`redis://HOST:PORT`,
    /// any node of a Redis Cluster, or a Unix socket path), shared by every node given
    /// the same Redis and prefix [default: in memory].
    #[arg(
        long,
        env = "ERIC_REDIS",
        value_name = "URL",
        help_heading = "Redis engine"
    )]
    pub redis: Option<String>,

    /// What every Redis key starts with, so that several deployments share a Redis.
    #[arg(
        long,
        env = "ERIC_REDIS_PREFIX",
        value_name = "PREFIX",
        default_value = "eric",
        help_heading = "Redis engine"
    )]
    pub redis_prefix: String,

    /// With a `rediss://` URL: trust the certificate authority in this PEM file instead
    /// of the system's trust store.
    #[arg(
        long,
        env = "ERIC_REDIS_CA",
        value_name = "PATH",
        help_heading = "Redis engine"
    )]
    pub redis_ca: Option<PathBuf>,

    /// With a `rediss://` URL: present this client certificate (PEM) to a Redis that
    /// asks for one (`tls-auth-clients`); needs --redis-key.
    #[arg(
        long,
        env = "ERIC_REDIS_CERT",
        value_name = "PATH",
        requires = "redis_key",
        help_heading = "Redis engine"
    )]
    pub redis_cert: Option<PathBuf>,

    /// The private key (PEM) of --redis-cert.
    #[arg(
        long,
        env = "ERIC_REDIS_KEY",
        value_name = "PATH",
        requires = "redis_cert",
        help_heading = "Redis engine"
    )]
    pub redis_key: Option<PathBuf>,

    /// The `retry` of every event, in milliseconds.
    #[arg(
        long,
        env = "ERIC_RETRY_MS",
        value_name = "MS",
        default_value_t = eric_sse::DEFAULT_RETRY_MS,
        help_heading = "Channels and queues"
    )]
    pub retry_ms: u64,
}

fn unix_defaults() -> UnixServerConfig {
    UnixServerConfig::new("")
}

/// The HTTP server's defaults, its address included.
pub(crate) fn http_defaults() -> HttpServerConfig {
    HttpServerConfig::default()
}

/// `--max-lag-bytes` unless set: 1 MiB a stream.
pub const DEFAULT_MAX_LAG_BYTES: usize = 1 << 20;

/// `--max-queued-bytes` unless set: 256 MiB over the server.
pub const DEFAULT_MAX_QUEUED_BYTES: usize = 256 << 20;

/// `--overflow`: the [`OverflowPolicy`] of bounded queues.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum Overflow {
    /// Refuse the new message (the sender gets an error).
    Reject,
    /// Discard the oldest queued message.
    DropOldest,
    /// Remove the listener; its stream ends.
    Disconnect,
}

impl From<OverflowPolicy> for Overflow {
    fn from(policy: OverflowPolicy) -> Self {
        match policy {
            OverflowPolicy::Reject => Overflow::Reject,
            OverflowPolicy::DropOldest => Overflow::DropOldest,
            OverflowPolicy::Disconnect => Overflow::Disconnect,
        }
    }
}

impl From<Overflow> for OverflowPolicy {
    fn from(overflow: Overflow) -> Self {
        match overflow {
            Overflow::Reject => OverflowPolicy::Reject,
            Overflow::DropOldest => OverflowPolicy::DropOldest,
            Overflow::Disconnect => OverflowPolicy::Disconnect,
        }
    }
}

/// A duration written `10`, `10s`, `1.5s`, `500ms` or `2m` (a bare number is seconds).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct HumanDuration(pub Duration);

impl FromStr for HumanDuration {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let text = text.trim();
        let split = text
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(text.len());
        let (number, unit) = text.split_at(split);
        let value: f64 = number
            .parse()
            .map_err(|_| format!("`{text}` is not a duration: write e.g. 10, 10s, 500ms or 2m"))?;
        let seconds = match unit.trim() {
            "" | "s" => value,
            "ms" => value / 1000.0,
            "m" | "min" => value * 60.0,
            "h" => value * 3600.0,
            other => {
                return Err(format!(
                    "unknown unit `{other}` in `{text}`: use ms, s, m or h"
                ))
            }
        };
        Duration::try_from_secs_f64(seconds)
            .map(HumanDuration)
            .map_err(|_| format!("`{text}` is out of range"))
    }
}

impl fmt::Display for HumanDuration {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let millis = self.0.as_millis();
        if millis % 1000 == 0 {
            write!(f, "{}s", millis / 1000)
        } else {
            write!(f, "{millis}ms")
        }
    }
}

/// Unix permission bits written in octal (`600`, `0660`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SocketMode(pub u32);

impl FromStr for SocketMode {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let digits = text.trim_start_matches("0o");
        match u32::from_str_radix(digits, 8) {
            Ok(mode) if mode <= 0o777 => Ok(SocketMode(mode)),
            _ => Err(format!(
                "`{text}` is not a permission mode: write octal digits, e.g. 600 or 660"
            )),
        }
    }
}

impl fmt::Display for SocketMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:o}", self.0)
    }
}

fn parse_positive(text: &str) -> Result<usize, String> {
    match text.parse::<usize>() {
        Ok(0) => Err("must be at least 1".to_owned()),
        Ok(n) => Ok(n),
        Err(error) => Err(format!("`{text}` is not a count: {error}")),
    }
}

/// Checks that `--http` reads as `HOST:PORT` (an `http://` in front and a `/` after are
/// accepted), so that a mistyped address is a usage error before anything runs. The host
/// is resolved later, by the command that uses it.
fn parse_http_address(text: &str) -> Result<String, String> {
    let example = "write HOST:PORT, e.g. 127.0.0.1:8080";
    let address = authority(text);
    let Some((host, port)) = address.rsplit_once(':') else {
        return Err(format!("`{text}` has no port: {example}"));
    };
    if port.parse::<u16>().is_err() {
        return Err(format!(
            "`{port}` is not a port number (0 to 65535): {example}"
        ));
    }
    let host_is_valid = match host.strip_prefix('[') {
        Some(bracketed) => bracketed
            .strip_suffix(']')
            .is_some_and(|ip| ip.parse::<std::net::Ipv6Addr>().is_ok()),
        None => {
            !host.is_empty()
                && host
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_'))
        }
    };
    if host_is_valid {
        Ok(text.to_owned())
    } else {
        Err(format!(
            "`{host}` is not a host name or IP address (an IPv6 address goes in brackets, \
             [::1]:8080): {example}"
        ))
    }
}

/// How log lines are written.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    /// One line of text each.
    Text,
    /// One JSON object each.
    Json,
}

fn parse_log_filter(text: &str) -> Result<String, String> {
    tracing_subscriber::EnvFilter::builder()
        .parse(text)
        .map(|_| text.to_owned())
        .map_err(|error| {
            format!("`{text}` is not a log filter ({error}): use e.g. info or eric_socket=debug")
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn the_command_definition_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn durations_read_bare_seconds_and_units() {
        let parse = |text: &str| text.parse::<HumanDuration>().map(|d| d.0);
        assert_eq!(parse("10"), Ok(Duration::from_secs(10)));
        assert_eq!(parse("1.5s"), Ok(Duration::from_millis(1500)));
        assert_eq!(parse("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(parse("2m"), Ok(Duration::from_secs(120)));
        assert!(parse("soon").is_err());
        assert!(parse("5 fortnights").is_err());
        assert_eq!(HumanDuration(Duration::from_secs(10)).to_string(), "10s");
        assert_eq!(
            HumanDuration(Duration::from_millis(250)).to_string(),
            "250ms"
        );
    }

    #[test]
    fn socket_modes_are_octal() {
        assert_eq!("600".parse(), Ok(SocketMode(0o600)));
        assert_eq!("0660".parse(), Ok(SocketMode(0o660)));
        assert_eq!("0o644".parse(), Ok(SocketMode(0o644)));
        assert!("800".parse::<SocketMode>().is_err());
        assert!("1777".parse::<SocketMode>().is_err());
        assert_eq!(SocketMode(0o600).to_string(), "600");
    }

    #[test]
    fn a_negative_number_is_a_payload_not_a_flag() {
        let cli = Cli::try_parse_from(["eric", "broadcast", "1", "t", "-5"]).unwrap();
        let Command::Broadcast { payload, .. } = cli.command else {
            panic!("not a broadcast")
        };
        assert_eq!(payload.payload.as_deref(), Some("-5"));
    }

    #[test]
    fn http_addresses_are_host_and_port() {
        for good in [
            "127.0.0.1:8080",
            "localhost:0",
            "http://eric.example:80/",
            "[::1]:8080",
        ] {
            assert_eq!(parse_http_address(good).as_deref(), Ok(good));
        }
        for (bad, reason) in [
            ("nope", "has no port"),
            ("127.0.0.1:http", "not a port number"),
            ("127.0.0.1:70000", "not a port number"),
            (":8080", "not a host name"),
            ("::1:8080", "not a host name"),
            ("[::1:8080", "not a host name"),
            ("https://eric.example:443", "not a host name"),
        ] {
            let error = parse_http_address(bad).unwrap_err();
            assert!(error.contains(reason), "{bad}: {error}");
            assert!(error.contains("HOST:PORT"), "{bad}: {error}");
        }
    }

    #[test]
    fn cors_origins_repeat() {
        let cli = Cli::try_parse_from([
            "eric",
            "serve",
            "--cors-origin",
            "https://a.example",
            "--cors-origin",
            "https://b.example",
        ])
        .unwrap();
        let Command::Serve(args) = cli.command else {
            panic!("not serve")
        };
        assert_eq!(
            args.cors_origins,
            ["https://a.example", "https://b.example"]
        );
    }
}

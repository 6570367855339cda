//! The settings of an [`HttpServer`](super::HttpServer).

use super::auth::AccessConfig;
use super::tls::TlsConfig;
use eric_sse::http::SseBodyConfig;
use std::net::SocketAddr;
use std::time::Duration;

/// The default limit on a request body: a 1 MiB payload plus 64 KiB for the rest of the
/// JSON object (the same as the Unix server's command limit).
pub const DEFAULT_MAX_BODY_BYTES: usize = crate::limits::MAX_REQUEST_BYTES;

/// Settings of an [`HttpServer`](super::HttpServer).
///
/// ```
/// use eric_socket::HttpServerConfig;
/// use std::time::Duration;
///
/// let mut config = HttpServerConfig::new("127.0.0.1:8080".parse().unwrap());
/// config.cors_allowed_origins = vec!["https://app.example".to_owned()];
/// config.sse = config.sse.with_keep_alive(Some(Duration::from_secs(30)));
/// assert_eq!(config.max_streams, 16_384);
/// ```
#[derive(Clone, Debug)]
pub struct HttpServerConfig {
    /// The address to listen on. Default `127.0.0.1:8080`: only this machine can
    /// connect; listening on another interface is a deliberate choice.
    pub addr: SocketAddr,
    /// The largest request body accepted, in bytes ([`DEFAULT_MAX_BODY_BYTES`]).
    pub max_body_bytes: usize,
    /// How long a client may take to send a request head, counted from the moment the
    /// server waits for one (so it is also the idle timeout of a keep-alive connection).
    /// Default 10 s.
    pub header_read_timeout: Duration,
    /// How long a client may take to send a request body (default 10 s).
    pub body_read_timeout: Duration,
    /// Connections served at once; more wait to be accepted (default 16,384).
    pub max_connections: usize,
    /// Event streams open at once; more are answered `503` (default 16,384).
    pub max_streams: usize,
    /// How event streams are written: keep-alive interval (default 15 s), the floor of
    /// the `retry:` written at the start (default 1,000 ms), data encoding.
    pub sse: SseBodyConfig,
    /// Origins allowed to call the server from a browser page served elsewhere (CORS),
    /// e.g. `http://localhost:3000`; the entry `*` allows every origin. Empty (the
    /// default): no CORS headers.
    pub cors_allowed_origins: Vec<String>,
    /// `Host` names answered besides the defaults: the loopback names (`localhost`,
    /// `127.0.0.1`, `[::1]`, with any port) when listening on a loopback
    /// address or on every interface, and the address listened on (any IP address when
    /// that is every interface). An entry is a name (`events.example.org`, any port or
    /// none), `NAME:PORT` (that port only), or `*` (every name). A request naming
    /// another host is answered `421`: this shuts out DNS rebinding, where a page
    /// points a name of its own at this server to read its answers.
    pub allowed_hosts: Vec<String>,
    /// How long shutdown waits for connections to finish before cutting them (default 5 s).
    pub shutdown_grace: Duration,
    /// How long data the server wrote may stay unacknowledged before the connection is
    /// dropped (`TCP_USER_TIMEOUT`, Linux only; default 30 s; `None` leaves the system's
    /// default, about 15 minutes). A client that vanished without closing its connection
    /// (a laptop lid shut, a network gone) acknowledges nothing: this bounds how long its
    /// stream and `/watch` listener outlive it, counted from the next keep-alive.
    pub tcp_user_timeout: Option<Duration>,
    /// Who may do what: JWT bearer tokens (see [`super::auth`]). Default: no key, every
    /// request is served.
    pub access: AccessConfig,
    /// Speak TLS with this certificate and key (HTTP/2 or HTTP/1.1, as ALPN chooses);
    /// `None` (the default): plain HTTP/1.1, and HTTP/2 for clients that start with its
    /// preface (h2c with prior knowledge).
    pub tls: Option<TlsConfig>,
}

impl HttpServerConfig {
    /// Default settings, listening on `addr`.
    pub fn new(addr: SocketAddr) -> Self {
        HttpServerConfig {
            addr,
            max_body_bytes: DEFAULT_MAX_BODY_BYTES,
            header_read_timeout: Duration::from_secs(10),
            body_read_timeout: Duration::from_secs(10),
            max_connections: crate::limits::MAX_CONNECTIONS,
            max_streams: 16_384,
            sse: SseBodyConfig::default(),
            cors_allowed_origins: Vec::new(),
            allowed_hosts: Vec::new(),
            shutdown_grace: crate::limits::SHUTDOWN_GRACE,
            tcp_user_timeout: Some(Duration::from_secs(30)),
            access: AccessConfig::default(),
            tls: None,
        }
    }
}

impl Default for HttpServerConfig {
    /// Default settings on `127.0.0.1:8080`.
    fn default() -> Self {
        HttpServerConfig::new(SocketAddr::from(([127, 0, 0, 1], 8080)))
    }
}

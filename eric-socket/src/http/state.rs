//! What every connection of a server shares: the settings, the channels, and the
//! bookkeeping of open streams.

use super::auth::Gate;
use super::config::HttpServerConfig;
use super::host::HostPolicy;
use super::observe::Monitor;
use super::stream::StreamSlots;
use crate::container::ChannelContainer;
use crate::shutdown::{ShutdownHandle, Undelivered};
use hyper_util::rt::{TokioExecutor, TokioTimer};
use hyper_util::server::conn::auto;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use tokio::sync::Semaphore;

/// What every connection of a server shares.
#[derive(Debug)]
pub(crate) struct State {
    pub(crate) config: HttpServerConfig,
    pub(crate) container: Arc<ChannelContainer>,
    pub(crate) shutdown: ShutdownHandle,
    /// Messages that open streams could not write before shutdown ended them.
    pub(crate) undelivered: Undelivered,
    /// The `Host` names the server answers.
    pub(crate) hosts: HostPolicy,
    /// One permit per open event stream.
    pub(crate) streams: Arc<Semaphore>,
    pub(crate) slots: Arc<StreamSlots>,
    /// How hyper serves the connections that are not a lone event stream: HTTP/1.1, or
    /// HTTP/2 when the client opens with its preface (after ALPN, or h2c with prior
    /// knowledge).
    pub(crate) hyper: auto::Builder<TokioExecutor>,
    /// The TLS handshake of every connection, when the server speaks TLS.
    pub(crate) tls: Option<Arc<rustls::ServerConfig>>,
    /// The token checks.
    pub(crate) gate: Gate,
    /// The snapshots of `/monitor/events`.
    pub(crate) monitor: Monitor,
    /// Whether a task samples the figures for `monitor` (see `observe::start_sampling`).
    pub(crate) sampling: AtomicBool,
}

impl State {
    /// The state of a server (or a mounted service) answering as if listening on
    /// `config.addr`, over `container`, stopped by `shutdown`; `tls` is the handshake
    /// of a server that speaks TLS itself (a mounted service leaves it to its host).
    pub(crate) fn new(
        config: HttpServerConfig,
        container: Arc<ChannelContainer>,
        shutdown: ShutdownHandle,
        tls: Option<Arc<rustls::ServerConfig>>,
    ) -> State {
        let mut hyper = auto::Builder::new(TokioExecutor::new());
        hyper
            .http1()
            .timer(TokioTimer::new())
            .header_read_timeout(config.header_read_timeout);
        hyper.http2().timer(TokioTimer::new());
        State {
            gate: Gate::new(config.access.clone()),
            streams: Arc::new(Semaphore::new(config.max_streams)),
            slots: Arc::default(),
            hosts: HostPolicy::new(config.addr, &config.allowed_hosts),
            undelivered: Undelivered::default(),
            config,
            container,
            shutdown,
            hyper,
            tls,
            monitor: Monitor::default(),
            sampling: AtomicBool::new(false),
        }
    }
}

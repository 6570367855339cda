//! What every connection of a server shares: the settings, the channels, and the
//! bookkeeping of open streams.

use super::auth::Gate;
use super::config::HttpServerConfig;
use super::host::HostPolicy;
use super::observe::Monitor;
use super::stream::StreamSlots;
use crate::container::ChannelContainer;
use crate::shutdown::{ShutdownHandle, Undelivered};
use hyper_util::rt::TokioExecutor;
use hyper_util::server::conn::auto;
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
}

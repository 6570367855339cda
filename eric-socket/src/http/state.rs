//! What every connection of a server shares: the settings, the channels, and the
//! bookkeeping of open streams.

use super::config::HttpServerConfig;
use super::host::HostPolicy;
use super::stream::StreamSlots;
use crate::container::ChannelContainer;
use crate::shutdown::{ShutdownHandle, Undelivered};
use hyper::server::conn::http1;
use hyper_util::rt::TokioTimer;
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
    /// How hyper serves the connections that are not a lone event stream.
    pub(crate) hyper: http1::Builder,
}

impl State {
    /// The state of a server (or a mounted service) answering as if listening on
    /// `config.addr`, over `container`, stopped by `shutdown`.
    pub(crate) fn new(
        config: HttpServerConfig,
        container: Arc<ChannelContainer>,
        shutdown: ShutdownHandle,
    ) -> State {
        let mut hyper = http1::Builder::new();
        hyper
            .timer(TokioTimer::new())
            .header_read_timeout(config.header_read_timeout);
        State {
            streams: Arc::new(Semaphore::new(config.max_streams)),
            slots: Arc::default(),
            hosts: HostPolicy::new(config.addr, &config.allowed_hosts),
            undelivered: Undelivered::default(),
            config,
            container,
            shutdown,
            hyper,
        }
    }
}

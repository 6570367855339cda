//! The engine: the local channels of this node, kept in step with Redis.

use crate::keys::{self, ChannelKeys};
use crate::parse::{self, Entry, Notice};
use eric_core::{Applied, Epoch, Error, Listener, Message, Result, Retention};
use eric_socket::engine::{ChannelStream, Engine, EngineFigures};
use eric_socket::metrics::LatencyHistogram;
use eric_socket::ChannelSettings;
use eric_sse::SseChannel;
use futures::StreamExt;
use parking_lot::{Mutex, RwLock};
use redis::aio::{MultiplexedConnection, PubSubSink};
use redis::{AsyncConnectionConfig, RedisError, Script, Value};
use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::future::Future;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// The least number of entries a channel's log keeps in Redis: the log is also the
/// queue of every named listener, so it must hold more than what resume needs.
const LOG_FLOOR: usize = 10_000;

/// How often consumed positions are stored as cursors.
const CURSOR_INTERVAL: Duration = Duration::from_millis(200);

/// How long the notification connection may stay silent before it is probed.
const PROBE_INTERVAL: Duration = Duration::from_secs(5);

/// How many log entries one read takes.
const READ_BATCH: usize = 1000;

/// Where the engine finds Redis and how it names its keys.
#[derive(Clone, Debug)]
pub struct RedisConfig {
    /// `redis://host:port/db` (a Redis Cluster's node too), `rediss://` for TLS,
    /// `redis+unix:///path` or a path to a Unix socket.
    pub url: String,
    /// The certificates of a `rediss://` connection, when the system's trust store and
    /// no client certificate are not what Redis wants.
    pub tls: RedisTls,
    /// What every key starts with, so several deployments can share a Redis.
    pub prefix: String,
    /// How long an operation may take before it fails as unavailable.
    pub timeout: Duration,
}

impl RedisConfig {
    /// The Redis at `url`, with the default prefix and timeout.
    pub fn new(url: impl Into<String>) -> Self {
        RedisConfig {
            url: url.into(),
            prefix: crate::DEFAULT_PREFIX.to_owned(),
            timeout: crate::DEFAULT_TIMEOUT,
            tls: RedisTls::default(),
        }
    }

    /// The certificates of a `rediss://` connection.
    pub fn tls(mut self, tls: RedisTls) -> Self {
        self.tls = tls;
        self
    }

    /// Another key prefix.
    pub fn prefix(mut self, prefix: impl Into<String>) -> Self {
        self.prefix = prefix.into();
        self
    }

    fn client_url(&self) -> String {
        if self.url.starts_with('/') {
            format!("redis+unix://{}", self.url)
        } else {
            self.url.clone()
        }
    }

    /// The client for the URL, with the TLS settings given.
    fn client(&self) -> Result<redis::Client> {
        let invalid = |e: RedisError| Error::Unavailable(format!("Redis URL {:?}: {e}", self.url));
        match self.tls.certificates() {
            None => redis::Client::open(self.client_url()).map_err(invalid),
            Some(_) if !self.url.starts_with("rediss://") => Err(Error::Unavailable(format!(
                "Redis URL {:?}: TLS certificates were given for a URL that is not rediss://",
                self.url
            ))),
            Some(certificates) => {
                redis::Client::build_with_tls(self.client_url(), certificates).map_err(invalid)
            }
        }
    }
}

/// The certificates of a TLS connection to Redis (`rediss://`), each in PEM.
#[derive(Clone, Debug, Default)]
pub struct RedisTls {
    /// The certificate authority that signed Redis's certificate, trusted instead of
    /// the system's trust store.
    pub ca: Option<Vec<u8>>,
    /// A client certificate (chain) and its private key, for a Redis that asks for one
    /// (`tls-auth-clients yes`, Redis's default).
    pub client: Option<(Vec<u8>, Vec<u8>)>,
}

impl RedisTls {
    fn certificates(&self) -> Option<redis::TlsCertificates> {
        if self.ca.is_none() && self.client.is_none() {
            return None;
        }
        Some(redis::TlsCertificates {
            client_tls: self.client.clone().map(|(client_cert, client_key)| {
                redis::ClientTlsConfig {
                    client_cert,
                    client_key,
                }
            }),
            root_cert: self.ca.clone(),
        })
    }
}

/// A named listener this node streams, and the cursor last stored for it.
struct Named {
    listener: Arc<Listener>,
    stored: u64,
}

/// A channel this node serves: the local channel, and its named listeners that were
/// made local to be streamed here.
struct Local {
    channel: SseChannel,
    named: Mutex<HashMap<String, Named>>,
}

struct Scripts {
    create: Script,
    publish: Script,
    subscribe: Script,
    unsubscribe: Script,
    remove: Script,
    cursor: Script,
    read_queue: Script,
}

/// A connection for commands: to one Redis server, or to a Redis Cluster (which routes
/// each command by its first key).
#[derive(Clone)]
enum Connection {
    Single(MultiplexedConnection),
    Cluster(redis::cluster_async::ClusterConnection),
}

impl redis::aio::ConnectionLike for Connection {
    fn req_packed_command<'a>(&'a mut self, cmd: &'a redis::Cmd) -> redis::RedisFuture<'a, Value> {
        match self {
            Connection::Single(c) => c.req_packed_command(cmd),
            Connection::Cluster(c) => c.req_packed_command(cmd),
        }
    }

    fn req_packed_commands<'a>(
        &'a mut self,
        cmd: &'a redis::Pipeline,
        offset: usize,
        count: usize,
    ) -> redis::RedisFuture<'a, Vec<Value>> {
        match self {
            Connection::Single(c) => c.req_packed_commands(cmd, offset, count),
            Connection::Cluster(c) => c.req_packed_commands(cmd, offset, count),
        }
    }

    fn get_db(&self) -> i64 {
        match self {
            Connection::Single(c) => c.get_db(),
            Connection::Cluster(c) => c.get_db(),
        }
    }
}

struct Inner {
    client: redis::Client,
    /// Set when the Redis given is a node of a Redis Cluster: commands go through it,
    /// notifications through `client` (a PUBLISH reaches every node of a cluster).
    cluster: Option<redis::cluster::ClusterClient>,
    prefix: String,
    timeout: Duration,
    connection: tokio::sync::Mutex<Option<Connection>>,
    /// The sending half of the notification connection, while it is up.
    sink: Mutex<Option<PubSubSink>>,
    local: RwLock<HashMap<String, Arc<Local>>>,
    scripts: Scripts,
    /// Tells this node's watcher ids from every other node's and from named listeners.
    node_tag: String,
    watchers: AtomicU64,
    health: Health,
}

/// What `/metrics` tells of Redis: read from here, never by a round trip.
#[derive(Default)]
struct Health {
    /// Whether the command connection answered its last command.
    commands_up: AtomicBool,
    /// Whether a command connection was ever made: the next one is a reconnect.
    connected_once: AtomicBool,
    /// Connections (for commands or notifications) made again after one was lost.
    reconnects: AtomicU64,
    /// Every command and script, from sending to the answer (or the failure).
    latency: LatencyHistogram,
}

impl Health {
    /// Counts a command sent at `sent` that ended with `result`, and whether Redis
    /// answered it (an error reply is an answer; a dropped connection is not).
    fn record<T>(&self, sent: Instant, result: &redis::RedisResult<T>) {
        self.latency.observe(sent.elapsed());
        let answered = result.as_ref().map_or_else(answered, |_| true);
        self.commands_up.store(answered, Ordering::Relaxed);
    }
}

/// The Redis engine (see the [crate documentation](crate)). It runs its own small tokio
/// runtime for Redis's connections, so its blocking calls are safe from any thread,
/// async or not.
pub struct RedisEngine {
    inner: Arc<Inner>,
    runtime: Option<tokio::runtime::Runtime>,
}

impl fmt::Debug for RedisEngine {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedisEngine")
            .field("prefix", &self.inner.prefix)
            .field("channels", &self.inner.local.read().len())
            .finish_non_exhaustive()
    }
}

impl Drop for RedisEngine {
    fn drop(&mut self) {
        if let Some(runtime) = self.runtime.take() {
            runtime.shutdown_background();
        }
    }
}

fn unavailable(error: impl fmt::Display) -> Error {
    Error::Unavailable(format!("Redis: {error}"))
}

/// Whether Redis answered, though with an error (a script's refusal, a value of the
/// wrong type), rather than not at all.
fn answered(error: &RedisError) -> bool {
    !matches!(failure(error, ""), Error::Unavailable(_))
}

/// What a Redis failure means for the caller: the store unreachable, or a value that
/// does not parse (named by `key`).
fn failure(error: &RedisError, key: &str) -> Error {
    if error.is_io_error()
        || error.is_timeout()
        || error.is_connection_dropped()
        || error.is_connection_refusal()
        || matches!(
            error.kind(),
            redis::ErrorKind::BusyLoadingError | redis::ErrorKind::TryAgain
        )
    {
        unavailable(error)
    } else if error.kind() == redis::ErrorKind::TypeError {
        Error::Engine(format!("{key}: {error}"))
    } else {
        match reply_code(error) {
            Some("BADVALUE") => Error::Engine(error.to_string()),
            _ if error.code() == Some("WRONGTYPE") => Error::Engine(format!("{key}: {error}")),
            _ => unavailable(error),
        }
    }
}

/// The first word of an error reply (a script's `redis.error_reply`), however the
/// client classified it.
fn reply_code(error: &RedisError) -> Option<&str> {
    let text = error.detail().or_else(|| error.code())?;
    text.split_whitespace().next()
}

impl RedisEngine {
    /// Connects to Redis (failing if it cannot be reached now) and starts listening
    /// for notifications; reconnects with backoff whenever the connection drops.
    pub fn connect(config: RedisConfig) -> Result<Self> {
        let client = config.client()?;
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .thread_name("eric-redis")
            .enable_all()
            .build()
            .map_err(unavailable)?;
        let cluster = match Self::cluster_of(&runtime, &client, &config) {
            Ok(cluster) => cluster,
            Err(error) => {
                // Dropping a runtime may not block in an async context.
                runtime.shutdown_background();
                return Err(error);
            }
        };
        let inner = Arc::new(Inner {
            client,
            cluster,
            prefix: config.prefix,
            timeout: config.timeout,
            connection: tokio::sync::Mutex::new(None),
            sink: Mutex::new(None),
            local: RwLock::default(),
            scripts: Scripts {
                create: Script::new(keys::CREATE),
                publish: Script::new(keys::PUBLISH),
                subscribe: Script::new(keys::SUBSCRIBE),
                unsubscribe: Script::new(keys::UNSUBSCRIBE),
                remove: Script::new(keys::REMOVE),
                cursor: Script::new(keys::CURSOR),
                read_queue: Script::new(keys::READ_QUEUE),
            },
            node_tag: format!("{}", Epoch::new()),
            watchers: AtomicU64::new(0),
            health: Health::default(),
        });
        let engine = RedisEngine {
            inner: Arc::clone(&inner),
            runtime: Some(runtime),
        };
        engine.block(|inner| async move { inner.connection().await.map(drop) })?;
        let handle = engine.handle();
        let (ready_tx, ready_rx) = std::sync::mpsc::sync_channel(1);
        handle.spawn(subscriber(Arc::clone(&inner), Some(ready_tx)));
        handle.spawn(cursor_keeper(Arc::clone(&inner)));
        // The first subscription is up before any channel is served.
        let _ = ready_rx.recv_timeout(inner.timeout);
        Ok(engine)
    }

    /// A cluster client if the Redis at `client` is a node of a Redis Cluster.
    fn cluster_of(
        runtime: &tokio::runtime::Runtime,
        client: &redis::Client,
        config: &RedisConfig,
    ) -> Result<Option<redis::cluster::ClusterClient>> {
        let probe = async {
            let mut connection = client.get_multiplexed_async_connection().await?;
            redis::cmd("INFO")
                .arg("cluster")
                .query_async::<String>(&mut connection)
                .await
        };
        let client = client.clone();
        let timeout = config.timeout;
        let info = std::thread::scope(|scope| {
            scope
                .spawn(|| runtime.block_on(async { tokio::time::timeout(timeout, probe).await }))
                .join()
        })
        .map_err(|_| unavailable("the probe of Redis panicked"))?
        .map_err(|_| unavailable(format!("no answer within {timeout:?}")))?
        .map_err(unavailable)?;
        if !info.contains("cluster_enabled:1") {
            return Ok(None);
        }
        let mut builder =
            redis::cluster::ClusterClient::builder(vec![client.get_connection_info().clone()])
                .connection_timeout(timeout)
                .response_timeout(timeout);
        if let Some(certificates) = config.tls.certificates() {
            builder = builder.certs(certificates);
        }
        builder.build().map(Some).map_err(unavailable)
    }

    fn handle(&self) -> &tokio::runtime::Handle {
        self.runtime.as_ref().expect("runs until dropped").handle()
    }

    /// Runs `work` on the engine's runtime and waits for it, at most the timeout.
    fn block<T, F, W>(&self, work: W) -> Result<T>
    where
        T: Send + 'static,
        F: Future<Output = Result<T>> + Send + 'static,
        W: FnOnce(Arc<Inner>) -> F,
    {
        let (tx, rx) = std::sync::mpsc::sync_channel(1);
        let timeout = self.inner.timeout;
        let future = work(Arc::clone(&self.inner));
        self.handle().spawn(async move {
            let result = tokio::time::timeout(timeout, future)
                .await
                .unwrap_or_else(|_| Err(unavailable(format!("no answer within {timeout:?}"))));
            let _ = tx.send(result);
        });
        let wait = move || {
            rx.recv()
                .unwrap_or_else(|_| Err(unavailable("the engine stopped")))
        };
        match tokio::runtime::Handle::try_current() {
            Ok(current)
                if current.runtime_flavor() == tokio::runtime::RuntimeFlavor::MultiThread =>
            {
                tokio::task::block_in_place(wait)
            }
            _ => wait(),
        }
    }

    fn local(&self, id: &str) -> Option<Arc<Local>> {
        self.inner.local.read().get(id).cloned()
    }
}

impl Inner {
    fn keys(&self, channel: &str) -> ChannelKeys {
        ChannelKeys::new(&self.prefix, channel)
    }

    fn channels_key(&self) -> String {
        format!("{}:channels", self.prefix)
    }

    async fn connection(&self) -> Result<Connection> {
        let mut guard = self.connection.lock().await;
        if let Some(connection) = &*guard {
            return Ok(connection.clone());
        }
        let made = match &self.cluster {
            Some(cluster) => cluster
                .get_async_connection()
                .await
                .map(Connection::Cluster),
            None => {
                let config = AsyncConnectionConfig::new()
                    .set_connection_timeout(self.timeout)
                    .set_response_timeout(self.timeout);
                self.client
                    .get_multiplexed_async_connection_with_config(&config)
                    .await
                    .map(Connection::Single)
            }
        };
        let connection = made.map_err(|error| {
            self.health.commands_up.store(false, Ordering::Relaxed);
            unavailable(error)
        })?;
        // A new connection answered its handshake: up until a command says otherwise.
        self.health.commands_up.store(true, Ordering::Relaxed);
        if self.health.connected_once.swap(true, Ordering::Relaxed) {
            self.health.reconnects.fetch_add(1, Ordering::Relaxed);
        }
        *guard = Some(connection.clone());
        Ok(connection)
    }

    /// Maps a failure, and forgets a connection that failed so the next call makes a
    /// new one.
    async fn fail(&self, error: RedisError, key: &str) -> Error {
        let error = failure(&error, key);
        if matches!(error, Error::Unavailable(_)) {
            *self.connection.lock().await = None;
        }
        error
    }

    async fn query<T: redis::FromRedisValue>(&self, cmd: &redis::Cmd, key: &str) -> Result<T> {
        let mut connection = self.connection().await?;
        let sent = Instant::now();
        let result = cmd.query_async(&mut connection).await;
        self.health.record(sent, &result);
        match result {
            Ok(value) => Ok(value),
            Err(error) => Err(self.fail(error, key).await),
        }
    }

    async fn run<T: redis::FromRedisValue>(
        &self,
        invocation: &redis::ScriptInvocation<'_>,
        key: &str,
    ) -> std::result::Result<T, RedisError> {
        let mut connection = self.connection().await.map_err(|e| {
            RedisError::from(std::io::Error::new(
                std::io::ErrorKind::NotConnected,
                e.to_string(),
            ))
        })?;
        let sent = Instant::now();
        let result = invocation.invoke_async(&mut connection).await;
        self.health.record(sent, &result);
        if let Err(error) = &result {
            if matches!(failure(error, key), Error::Unavailable(_)) {
                *self.connection.lock().await = None;
            }
        }
        result
    }

    /// Subscribes this node to the channel's notifications.
    async fn listen(&self, keys: &ChannelKeys) -> Result<()> {
        let sink = self.sink.lock().clone();
        let mut sink = sink.ok_or_else(|| unavailable("the notification connection is down"))?;
        sink.subscribe(&keys.notify)
            .await
            .map_err(|e| failure(&e, &keys.notify))
    }

    async fn log_range(&self, keys: &ChannelKeys, after: u64) -> Result<Vec<Entry>> {
        let reply: Value = self
            .query(
                redis::cmd("XRANGE")
                    .arg(&keys.log)
                    .arg(format!("{}-0", after + 1))
                    .arg("+")
                    .arg("COUNT")
                    .arg(READ_BATCH),
                &keys.log,
            )
            .await?;
        parse::entries(&keys.log, &reply)
    }

    /// Makes `id` a channel this node serves: subscribed first, then read, so that
    /// nothing published meanwhile is missed (the catch-up reads what the read missed).
    async fn load(self: &Arc<Self>, id: &str, settings: ChannelSettings) -> Result<Arc<Local>> {
        if let Some(local) = self.local.read().get(id) {
            return Ok(Arc::clone(local));
        }
        let keys = self.keys(id);
        self.listen(&keys).await?;
        let hash: HashMap<String, String> = self
            .query(redis::cmd("HGETALL").arg(&keys.meta), &keys.meta)
            .await?;
        if hash.is_empty() {
            return Err(Error::InvalidChannel(id.to_owned()));
        }
        let meta = parse::meta(&keys.meta, &hash)?;
        let retained = if meta.retention.max_entries == 0 || meta.last == 0 {
            Vec::new()
        } else {
            let reply: Value = self
                .query(
                    redis::cmd("XREVRANGE")
                        .arg(&keys.log)
                        .arg("+")
                        .arg("-")
                        .arg("COUNT")
                        .arg(meta.retention.max_entries.min(LOG_FLOOR)),
                    &keys.log,
                )
                .await?;
            let mut entries = parse::entries(&keys.log, &reply)?;
            entries.reverse();
            entries
        };
        let start = retained.first().map_or(meta.last, |e| e.offset - 1);
        let channel = SseChannel::builder()
            .id(id)
            .retry_ms(settings.retry_ms)
            .queue_config(settings.queue)
            .retention(meta.retention)
            .log_from(meta.epoch, start)
            .build();
        for entry in &retained {
            channel.apply(entry.offset, entry.to.as_deref(), &entry.message);
        }
        let local = Arc::clone(self.local.write().entry(id.to_owned()).or_insert_with(|| {
            Arc::new(Local {
                channel,
                named: Mutex::default(),
            })
        }));
        self.catch_up(id, &local).await?;
        Ok(local)
    }

    /// Applies what the log holds past the local channel's position.
    async fn catch_up(&self, id: &str, local: &Local) -> Result<()> {
        let keys = self.keys(id);
        loop {
            let next = local.channel.position().offset + 1;
            let entries = self.log_range(&keys, next - 1).await?;
            if let Some(first) = entries.first() {
                if first.offset > next {
                    self.lost(id, next, first.offset);
                    return Ok(());
                }
            }
            for entry in &entries {
                local
                    .channel
                    .apply(entry.offset, entry.to.as_deref(), &entry.message);
            }
            if entries.len() < READ_BATCH {
                return Ok(());
            }
        }
    }

    /// The log no longer holds what the local channel missed: drop the local channel,
    /// ending its streams, so that their clients reconnect and resume through a fresh
    /// copy, which marks the gap.
    fn lost(&self, id: &str, next: u64, first: u64) {
        tracing::warn!(channel = ?id, next, first, "the Redis log no longer covers what this node missed: its streams restart");
        self.forget(id, true);
    }

    /// Drops the local copy of a channel; `end` ends its streams.
    fn forget(&self, id: &str, end: bool) {
        let Some(local) = self.local.write().remove(id) else {
            return;
        };
        if end {
            for listener in local.channel.listener_ids() {
                let _ = local.channel.remove_listener(&listener);
            }
        }
        let keys = self.keys(id);
        if let Some(mut sink) = self.sink.lock().clone() {
            tokio::spawn(async move {
                let _ = sink.unsubscribe(&keys.notify).await;
            });
        }
    }

    /// Applies `entry` to the local channel `id` if this node serves it; the local
    /// channel when the entries before it are missing here (the entry was not applied).
    fn apply(&self, id: &str, entry: &Entry) -> Option<Arc<Local>> {
        let local = self.local.read().get(id).cloned()?;
        match local
            .channel
            .apply(entry.offset, entry.to.as_deref(), &entry.message)
        {
            Applied::Gap { .. } => Some(local),
            Applied::Done | Applied::Duplicate => None,
        }
    }

    fn on_notice(self: &Arc<Self>, name: &str, payload: &[u8]) {
        let Some(id) = keys::channel_of_notify(&self.prefix, name) else {
            return;
        };
        let notice = std::str::from_utf8(payload)
            .map_err(|_| Error::Engine(format!("{name}: a notification is not UTF-8")))
            .and_then(|text| parse::notice(name, text));
        match notice {
            // Applied here, in the order the notifications arrive (the order of the
            // log: the publish script appends and notifies atomically); only a gap,
            // after notifications were missed, waits for a read of the log.
            Ok(Notice::Entry(entry)) => {
                if let Some(local) = self.apply(id, &entry) {
                    let inner = Arc::clone(self);
                    let id = id.to_owned();
                    tokio::spawn(async move {
                        if let Err(error) = inner.catch_up(&id, &local).await {
                            tracing::warn!(channel = ?id, %error, "cannot heal from the log");
                        }
                    });
                }
            }
            Ok(Notice::Removed) => self.forget(id, true),
            Ok(Notice::ListenerRemoved(listener)) => {
                if let Some(local) = self.local.read().get(id) {
                    local.named.lock().remove(&listener);
                    let _ = local.channel.remove_listener(&listener);
                }
            }
            Err(error) => tracing::warn!(%error, "a notification was ignored"),
        }
    }

    /// Stores the consumed position of every named listener streamed here, and lets go
    /// of those no stream holds any more (their queue stays in Redis as the log).
    async fn store_cursors(&self) -> Result<()> {
        let locals: Vec<(String, Arc<Local>)> = self
            .local
            .read()
            .iter()
            .map(|(id, local)| (id.clone(), Arc::clone(local)))
            .collect();
        for (id, local) in locals {
            let keys = self.keys(&id);
            let moved: Vec<(String, u64)> = local
                .named
                .lock()
                .iter()
                .filter_map(|(lid, named)| {
                    let through = named.listener.consumed_through();
                    (through > named.stored).then(|| (lid.clone(), through))
                })
                .collect();
            for (lid, through) in moved {
                let stored: i64 = self
                    .run(
                        self.scripts
                            .cursor
                            .key(&keys.listeners)
                            .arg(&lid)
                            .arg(through),
                        &keys.listeners,
                    )
                    .await
                    .map_err(|e| failure(&e, &keys.listeners))?;
                let mut named = local.named.lock();
                if stored == 0 {
                    named.remove(&lid);
                    let _ = local.channel.remove_listener(&lid);
                } else if let Some(entry) = named.get_mut(&lid) {
                    entry.stored = entry.stored.max(through);
                }
            }
            // A listener held only by this map and the channel has no stream here.
            let mut named = local.named.lock();
            named.retain(|lid, entry| {
                let idle = Arc::strong_count(&entry.listener) <= 2
                    && entry.listener.consumed_through() <= entry.stored;
                if idle {
                    let _ = local.channel.remove_listener(lid);
                }
                !idle
            });
        }
        Ok(())
    }
}

/// Keeps the notification connection up: subscribes to every channel this node serves,
/// heals each from the log after a reconnect, probes the connection when it is silent.
async fn subscriber(inner: Arc<Inner>, mut ready: Option<std::sync::mpsc::SyncSender<()>>) {
    let mut backoff = Duration::from_millis(50);
    let mut connected_once = false;
    loop {
        match inner.client.get_async_pubsub().await {
            Ok(pubsub) => {
                if std::mem::replace(&mut connected_once, true) {
                    inner.health.reconnects.fetch_add(1, Ordering::Relaxed);
                }
                let (mut sink, mut stream) = pubsub.split();
                let ids: Vec<String> = inner.local.read().keys().cloned().collect();
                let mut subscribed = true;
                for id in &ids {
                    if sink.subscribe(&inner.keys(id).notify).await.is_err() {
                        subscribed = false;
                    }
                }
                if subscribed {
                    *inner.sink.lock() = Some(sink.clone());
                    if let Some(ready) = ready.take() {
                        let _ = ready.send(());
                    }
                    if !ids.is_empty() {
                        tracing::info!(channels = ids.len(), "Redis notifications resumed");
                    }
                    let mut healed = true;
                    for id in &ids {
                        let local = inner.local.read().get(id).cloned();
                        if let Some(local) = local {
                            match inner.catch_up(id, &local).await {
                                Ok(()) => {}
                                // The command connection may be as dead as the lost one
                                // (now forgotten): what was published before the new
                                // subscription would stay missing until the channel's next
                                // notification, so connect and heal again.
                                Err(error @ Error::Unavailable(_)) => {
                                    tracing::warn!(channel = ?id, %error, "cannot heal from the log: reconnecting");
                                    healed = false;
                                    break;
                                }
                                Err(error) => {
                                    tracing::warn!(channel = ?id, %error, "cannot heal from the log");
                                }
                            }
                        }
                    }
                    if healed {
                        backoff = Duration::from_millis(50);
                        loop {
                            tokio::select! {
                                message = stream.next() => match message {
                                    Some(message) => inner.on_notice(message.get_channel_name(), message.get_payload_bytes()),
                                    None => break,
                                },
                                () = tokio::time::sleep(PROBE_INTERVAL) => {
                                    let probe = tokio::time::timeout(inner.timeout, sink.ping::<Value>()).await;
                                    if !matches!(probe, Ok(Ok(_))) {
                                        tracing::warn!("the Redis notification connection does not answer: reconnecting");
                                        break;
                                    }
                                }
                            }
                        }
                    }
                }
                *inner.sink.lock() = None;
                tracing::warn!("lost the Redis notification connection");
            }
            Err(error) => tracing::debug!(%error, "cannot reach Redis for notifications"),
        }
        tokio::time::sleep(backoff).await;
        backoff = (backoff * 2).min(Duration::from_secs(2));
    }
}

async fn cursor_keeper(inner: Arc<Inner>) {
    let mut tick = tokio::time::interval(CURSOR_INTERVAL);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        if let Err(error) = inner.store_cursors().await {
            tracing::debug!(%error, "cannot store the listeners' cursors yet");
        }
    }
}

fn script_error(error: &RedisError, key: &str, channel: &str, listener: Option<&str>) -> Error {
    match reply_code(error) {
        Some("NOCHANNEL") => Error::InvalidChannel(channel.to_owned()),
        Some("NOLISTENER") => Error::InvalidListener(listener.unwrap_or_default().to_owned()),
        Some("DUPLICATE") => Error::DuplicateId(listener.unwrap_or_default().to_owned()),
        _ => failure(error, key),
    }
}

impl Engine for RedisEngine {
    fn readiness(&self) -> std::result::Result<(), String> {
        self.block(|inner| async move {
            let pong: String = inner.query(&redis::cmd("PING"), "PING").await?;
            if inner.sink.lock().is_none() {
                return Err(unavailable("the notification connection is down"));
            }
            Ok(pong)
        })
        .map(drop)
        .map_err(|e| e.to_string())
    }

    fn create(
        &self,
        id: Option<&str>,
        retention: Retention,
        settings: &ChannelSettings,
    ) -> Result<SseChannel> {
        let id = id.map(str::to_owned);
        let settings = *settings;
        let local = self.block(move |inner| async move {
            let age = retention.max_age.map_or(0, |age| age.as_secs().max(1));
            let make = |id: String| {
                let inner = Arc::clone(&inner);
                async move {
                    let keys = inner.keys(&id);
                    let made: i64 = inner
                        .run(
                            inner
                                .scripts
                                .create
                                .key(&keys.meta)
                                .arg(Epoch::new().to_string())
                                .arg(retention.max_entries)
                                .arg(age),
                            &keys.meta,
                        )
                        .await
                        .map_err(|e| failure(&e, &keys.meta))?;
                    Ok::<_, Error>((made == 1).then_some(id))
                }
            };
            let id = match id {
                Some(id) => make(id.clone()).await?.ok_or(Error::DuplicateId(id))?,
                None => loop {
                    let key = format!("{}:next_channel", inner.prefix);
                    let n: u64 = inner.query(redis::cmd("INCR").arg(&key), &key).await?;
                    if let Some(id) = make(n.to_string()).await? {
                        break id;
                    }
                },
            };
            let key = inner.channels_key();
            inner
                .query::<i64>(redis::cmd("SADD").arg(&key).arg(&id), &key)
                .await?;
            inner.load(&id, settings).await
        })?;
        Ok(local.channel.clone())
    }

    fn get(&self, id: &str, settings: &ChannelSettings) -> Result<SseChannel> {
        if let Some(local) = self.local(id) {
            return Ok(local.channel.clone());
        }
        let id = id.to_owned();
        let settings = *settings;
        let local = self.block(move |inner| async move { inner.load(&id, settings).await })?;
        Ok(local.channel.clone())
    }

    fn remove(&self, id: &str) -> Result<SseChannel> {
        let channel = self
            .local(id)
            .map(|local| local.channel.clone())
            .unwrap_or_else(|| SseChannel::builder().id(id).build());
        let owned = id.to_owned();
        self.block(move |inner| async move {
            let keys = inner.keys(&owned);
            let removed: i64 = inner
                .run(
                    inner
                        .scripts
                        .remove
                        .key(&keys.meta)
                        .key(&keys.log)
                        .key(&keys.listeners)
                        .arg(&keys.notify),
                    &keys.meta,
                )
                .await
                .map_err(|e| failure(&e, &keys.meta))?;
            let key = inner.channels_key();
            inner
                .query::<i64>(redis::cmd("SREM").arg(&key).arg(&owned), &key)
                .await?;
            if removed == 0 {
                return Err(Error::InvalidChannel(owned));
            }
            inner.forget(&owned, true);
            Ok(())
        })?;
        Ok(channel)
    }

    fn snapshot(&self) -> Result<BTreeMap<String, Vec<String>>> {
        self.block(|inner| async move {
            let key = inner.channels_key();
            let ids: Vec<String> = inner.query(redis::cmd("SMEMBERS").arg(&key), &key).await?;
            let mut snapshot = BTreeMap::new();
            for id in ids {
                let keys = inner.keys(&id);
                let mut listeners: Vec<String> = inner
                    .query(redis::cmd("HKEYS").arg(&keys.listeners), &keys.listeners)
                    .await?;
                // This node's watchers too, which live only here, as in memory.
                if let Some(local) = inner.local.read().get(&id) {
                    for listener in local.channel.listener_ids() {
                        if !listeners.contains(&listener) {
                            listeners.push(listener);
                        }
                    }
                }
                listeners.sort();
                snapshot.insert(id, listeners);
            }
            Ok(snapshot)
        })
    }

    fn subscribe(&self, channel: &SseChannel) -> Result<String> {
        let channel_id = channel.id().to_owned();
        self.block(move |inner| async move {
            let key = format!("{}:next_listener", inner.prefix);
            let n: u64 = inner.query(redis::cmd("INCR").arg(&key), &key).await?;
            let id = n.to_string();
            let keys = inner.keys(&channel_id);
            let _joined: u64 = inner
                .run(
                    inner
                        .scripts
                        .subscribe
                        .key(&keys.meta)
                        .key(&keys.listeners)
                        .arg(&id),
                    &keys.meta,
                )
                .await
                .map_err(|e| script_error(&e, &keys.meta, &channel_id, Some(&id)))?;
            Ok(id)
        })
    }

    fn listener(&self, channel: &SseChannel, id: &str) -> Result<Arc<Listener>> {
        let local = match self.local(channel.id()) {
            Some(local) => local,
            None => return Err(Error::InvalidChannel(channel.id().to_owned())),
        };
        if let Some(named) = local.named.lock().get(id) {
            return Ok(Arc::clone(&named.listener));
        }
        let channel_id = channel.id().to_owned();
        let id = id.to_owned();
        self.block(move |inner| async move {
            let keys = inner.keys(&channel_id);
            loop {
                let record: Option<String> = inner
                    .query(
                        redis::cmd("HGET").arg(&keys.listeners).arg(&id),
                        &keys.listeners,
                    )
                    .await?;
                let record = record.ok_or_else(|| Error::InvalidListener(id.clone()))?;
                let (joined, cursor) = parse::listener(&keys.listeners, &id, &record)?;
                // The log and its top, read together.
                let (reply, top): (Value, Option<String>) = inner
                    .run(
                        inner
                            .scripts
                            .read_queue
                            .key(&keys.meta)
                            .key(&keys.log)
                            .arg(cursor + 1),
                        &keys.log,
                    )
                    .await
                    .map_err(|e| failure(&e, &keys.log))?;
                let top = top.ok_or_else(|| Error::InvalidChannel(channel_id.clone()))?;
                let top: u64 = top.parse().map_err(|_| {
                    Error::Engine(format!("{}: field s is not a whole number: {top:?}", keys.meta))
                })?;
                let entries = parse::entries(&keys.log, &reply)?;
                if entries.first().is_some_and(|first| first.offset > cursor + 1) {
                    tracing::warn!(channel = ?channel_id, listener = ?id, cursor, first = entries[0].offset, "the Redis log no longer holds all this listener's queue");
                }
                let backlog: Vec<(u64, Arc<Message>)> = entries
                    .into_iter()
                    .filter(|e| e.offset > joined && e.to.as_deref().is_none_or(|to| to == id))
                    .map(|e| (e.offset, e.message))
                    .collect();
                let mut named = local.named.lock();
                if let Some(existing) = named.get(&id) {
                    return Ok(Arc::clone(&existing.listener));
                }
                let made = Listener::with_id(id.clone()).queue_config(local.channel.queue_config());
                match local
                    .channel
                    .register_listener_at(made, joined, &backlog, top)?
                {
                    Ok(listener) => {
                        named.insert(
                            id.clone(),
                            Named {
                                listener: Arc::clone(&listener),
                                stored: cursor,
                            },
                        );
                        return Ok(listener);
                    }
                    // The local channel applied more than was read: read again.
                    Err(_) => continue,
                }
            }
        })
    }

    fn has_listener(&self, channel: &SseChannel, id: &str) -> Result<()> {
        if let Some(local) = self.local(channel.id()) {
            if local.named.lock().contains_key(id) {
                return Ok(());
            }
        }
        let channel_id = channel.id().to_owned();
        let id = id.to_owned();
        self.block(move |inner| async move {
            let keys = inner.keys(&channel_id);
            let exists: bool = inner
                .query(
                    redis::cmd("HEXISTS").arg(&keys.listeners).arg(&id),
                    &keys.listeners,
                )
                .await?;
            exists.then_some(()).ok_or(Error::InvalidListener(id))
        })
    }

    fn remove_listener(&self, channel: &SseChannel, id: &str) -> Result<()> {
        let channel_id = channel.id().to_owned();
        let id = id.to_owned();
        self.block(move |inner| async move {
            let keys = inner.keys(&channel_id);
            let removed: i64 = inner
                .run(
                    inner
                        .scripts
                        .unsubscribe
                        .key(&keys.listeners)
                        .arg(&id)
                        .arg(&keys.notify),
                    &keys.listeners,
                )
                .await
                .map_err(|e| failure(&e, &keys.listeners))?;
            if removed == 0 {
                return Err(Error::InvalidListener(id));
            }
            if let Some(local) = inner.local.read().get(&channel_id) {
                local.named.lock().remove(&id);
                let _ = local.channel.remove_listener(&id);
            }
            Ok(())
        })
    }

    fn publish(&self, channel: &SseChannel, to: Option<&str>, message: Arc<Message>) -> Result<()> {
        let channel_id = channel.id().to_owned();
        let to = to.map(str::to_owned);
        let log_length = channel.retention().max_entries.max(LOG_FLOOR);
        let payload = serde_json::to_string(&message.payload)
            .map_err(|e| Error::InvalidMessageFormat(e.to_string()))?;
        self.block(move |inner| async move {
            let keys = inner.keys(&channel_id);
            let offset: u64 = inner
                .run(
                    inner
                        .scripts
                        .publish
                        .key(&keys.meta)
                        .key(&keys.log)
                        .key(&keys.listeners)
                        .arg(to.as_deref().unwrap_or(""))
                        .arg(&message.msg_type)
                        .arg(&payload)
                        .arg(log_length)
                        .arg(&keys.notify),
                    &keys.meta,
                )
                .await
                .map_err(|e| script_error(&e, &keys.meta, &channel_id, to.as_deref()))?;
            // Stored: this node's streams get it now rather than on its notification.
            // Publishes of one channel acknowledged in another order than the log's
            // find a gap here: then the notifications, which come in the log's order,
            // bring the entry, with no read of the log and no wait for the publisher.
            let entry = Entry {
                offset,
                to,
                message,
            };
            inner.apply(&channel_id, &entry);
            Ok(())
        })
    }

    fn watch(&self, channel: &SseChannel, last_event_id: Option<&str>) -> Result<ChannelStream> {
        let n = self.inner.watchers.fetch_add(1, Ordering::Relaxed);
        let listener = Listener::with_id(format!("w{}.{n}", self.inner.node_tag))
            .queue_config(channel.queue_config());
        channel.watch_as(listener, last_event_id)
    }

    fn figures(&self) -> Option<EngineFigures> {
        let health = &self.inner.health;
        let up = health.commands_up.load(Ordering::Relaxed) && self.inner.sink.lock().is_some();
        Some(EngineFigures::new(
            "redis",
            up,
            health.reconnects.load(Ordering::Relaxed),
            &health.latency,
        ))
    }

    fn flush(&self) {
        if let Err(error) = self.block(|inner| async move { inner.store_cursors().await }) {
            tracing::warn!(%error, "cannot store the listeners' cursors");
        }
    }
}

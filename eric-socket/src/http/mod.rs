//! The HTTP transport (feature `http`): the routes of eric-api over the same
//! [`ChannelContainer`](crate::ChannelContainer) as the Unix server, with
//! `text/event-stream` streams for browsers.
//!
//! [`HttpServer`] is an HTTP/1.1 and HTTP/2 server on hyper 1.x and tokio, over TLS
//! when [`HttpServerConfig::tls`] is set (see [TLS and HTTP/2](#tls-and-http2)), checking
//! JWT bearer tokens when [`HttpServerConfig::access`] has a key (see [`auth`]). Channel
//! and listener ids
//! travel in the query (`channel_id`, `listener_id`) or in the path, percent-encoded.
//! [`ROUTES`] lists the routes (a test checks this table, the router and
//! docs/openapi.yaml against it).
//!
//! | method and path | query / body | answer |
//! |---|---|---|
//! | `PUT /create` | `channel_id` (optional: caller-chosen id); `history_size`, `history_age` (optional: the log's retention) | `{"channel_id": "..."}` |
//! | `POST /subscribe` | `channel_id` | `{"listener_id": "..."}` (a stopped listener: streaming starts it) |
//! | `POST /broadcast` | `channel_id`; body `{"type": "...", "payload": <any JSON>}` | `null` |
//! | `POST /dispatch` | `channel_id`, `listener_id`; body as above | `null` |
//! | `GET /stream/{channel_id}/{listener_id}` | header `Last-Event-ID` or `last_event_id` (optional) | `text/event-stream` of the listener |
//! | `GET /watch/{channel_id}` | header `Last-Event-ID` or `last_event_id` (optional) | `text/event-stream` of a fresh listener, removed when the client leaves |
//! | `DELETE /listener/{channel_id}/{listener_id}` | | `null` |
//! | `DELETE /channel/{channel_id}` | | `null` |
//! | `GET /channels` | | `["id", ...]`, sorted |
//! | `GET /` | | `{"<channel id>": ["<listener id>", ...]}` |
//! | `GET /metrics` | | the figures in the Prometheus text format (see [`crate::metrics`]) |
//! | `GET /healthz` | | `{"status": "serving"}` |
//! | `GET /readyz` | | `{"ready": true}`, or `503` with `{"ready": false, "message": "..."}` |
//! | `GET /monitor` | | the live monitor page (HTML) |
//! | `GET /monitor/events` | | `text/event-stream` of `snapshot` events, one a second |
//!
//! `GET /` and `GET /channels` also answer `HEAD`; every known path answers `OPTIONS`
//! (with CORS preflight headers when the origin is allowed).
//!
//! # Errors
//! Every error is JSON `{"message": "..."}` naming what was wrong:
//!
//! | status | when |
//! |---|---|
//! | 400 | a missing or empty `channel_id` / `listener_id`, a body that is not a JSON object with a string `"type"` |
//! | 401 | tokens are checked and the request's is missing, malformed, badly signed, expired, not yet valid, or for another issuer or audience (`WWW-Authenticate: Bearer ... error="invalid_token"`) |
//! | 403 | a valid token without the right the route needs on the channel (`error="insufficient_scope"`) |
//! | 404 | an unknown channel or listener, an unknown path |
//! | 405 | a known path with another method (the `Allow` header lists the right ones) |
//! | 408 | the body did not arrive within [`HttpServerConfig::body_read_timeout`] |
//! | 409 | `PUT /create` with a channel id that is taken |
//! | 410 | `POST /dispatch` to a listener that its queue's overflow policy just disconnected |
//! | 413 | a body over [`HttpServerConfig::max_body_bytes`] (by `Content-Length`, or counted while reading) |
//! | 415 | `POST /broadcast` or `/dispatch` without `Content-Type: application/json` (parameters allowed) |
//! | 421 | a `Host` the server does not answer (see [`HttpServerConfig::allowed_hosts`]) |
//! | 503 | more open streams than [`HttpServerConfig::max_streams`], a full bounded queue (`Reject` policy), a server shutting down (a stream, or a message published after shutdown began: not queued) |
//!
//! A request the server could not read to its end (408, 413) is answered with
//! `Connection: close`. A request hyper cannot parse gets hyper's bare `400`; a client
//! that does not finish its request head within
//! [`HttpServerConfig::header_read_timeout`] (an idle keep-alive connection included) is
//! disconnected.
//!
//! # Streams
//! `GET /stream` and `GET /watch` answer a [`eric_sse::http::SseBody`]: `retry:` once
//! at the start (raised to a floor, 1 s by default), then each event with its `id:`,
//! `event:` (the message type) and `data:` (the payload as JSON), and a `: keep-alive`
//! comment after 15 s of silence (see [`HttpServerConfig::sse`]). The headers are
//! `Content-Type: text/event-stream`, `Cache-Control: no-cache`, `X-Accel-Buffering: no`.
//!
//! * The listener is registered (`/watch`) or started (`/stream`) before the response
//!   head leaves: nothing broadcast after the client saw the head is lost.
//! * **Resume.** A `/stream` or `/watch` request with a position in `Last-Event-ID`
//!   (an `EventSource` sends it on reconnect) or in the `last_event_id` query parameter
//!   (for a first connection, which cannot set headers; the header wins) first replays
//!   the retained messages of the channel's log after that position that were for this
//!   subscriber, then goes on live. Event ids are positions, `<epoch>-<offset>`; a
//!   position the log cannot cover starts the stream with a `history_gap` marker (see
//!   [`eric_core::log`]).
//! * **One stream per listener.** A new `/stream` of a listener that already has one
//!   ends the older stream and waits (up to a second) until it is gone before it starts:
//!   the newest connection wins, as a reconnecting browser needs, and no event is taken
//!   by the old stream after the new one read the log.
//! * **A client that leaves** is noticed when the server reads the end of its
//!   connection, or at the latest when the next event or keep-alive cannot be written. A client that
//!   vanished without a word (no FIN, no reset) acknowledges nothing, and
//!   [`HttpServerConfig::tcp_user_timeout`] (30 s) fails its connection after the next
//!   keep-alive. The stream is then dropped: a `/watch` listener is removed from its
//!   channel, a `/stream` listener stays registered (and keeps queueing) for a later
//!   stream.
//! * **Removal and end.** When its listener or channel is deleted, or the channel
//!   broadcasts `_eric_channel_closed`, a stream sends that event and ends.
//! * **Memory.** Plain `GET /stream` and `GET /watch` requests that open a connection,
//!   or follow such a stream on it, are served without hyper: the server reads their
//!   heads itself and writes the events as chunks, so an idle stream holds little more
//!   than its socket and its events, not hyper's per-connection buffers. From the first
//!   other request on, hyper serves the connection; the answers are the same status,
//!   headers and body either way (`tests/http_direct_vs_hyper.rs` compares them).
//! * **Shutdown** refuses the messages published from then on, lets every stream write
//!   what is queued for it, then ends it cleanly (the body is finished, the client sees
//!   the end of the response) and closes the connections; see [`HttpServer::run`].
//!
//! # Host and Content-Type
//! Two checks, before routing, keep out the requests a page of another site can make a
//! browser send: a body must be declared `application/json` (a type a page can only
//! send after a CORS preflight), and the `Host` must be one the server answers, which
//! shuts out DNS rebinding (see [`HttpServerConfig::allowed_hosts`]).
//!
//! # CORS
//! With [`HttpServerConfig::cors_allowed_origins`] set, a request whose `Origin` is in the
//! list (or any origin, for the entry `*`) gets `Access-Control-Allow-Origin` with that
//! origin on every answer, streams and errors included, and `OPTIONS` answers the
//! preflight; so a page served elsewhere can use `fetch` and `EventSource`. The list is
//! empty by default: no CORS headers.
//!
//! Origins listed by name (not through `*`) also get
//! `Access-Control-Allow-Credentials: true`: their pages may send the `eric_token`
//! cookie (an `EventSource` with `withCredentials`).
//!
//! # TLS and HTTP/2
//! With [`HttpServerConfig::tls`] the server speaks TLS (rustls on ring), offering HTTP/2
//! then HTTP/1.1 by ALPN; hyper serves those connections. On plain TCP a client that
//! starts with the HTTP/2 preface (h2c with prior knowledge) gets HTTP/2 too, and every
//! other connection starts on the direct path above. [`HttpServer::tls_reloader`]
//! re-reads the certificate and key: later handshakes use them, open connections keep
//! theirs.
//!
//! # Mounted in an application
//! [`HttpService`] is the same API as a service to mount in an application's own
//! server (axum's `nest_service` with feature `tower`, or hyper's `serve_connection`):
//! the same routes and behaviour, on the application's listener and runtime, under the
//! prefix it chooses. The direct stream path above is `HttpServer`'s own: a mounted
//! stream is served by the application's server and costs what it costs there. See
//! docs/embedding.md and the example `axum_embed`.
//!
//! # Example
//! ```
//! use eric_socket::{ChannelContainer, HttpServer, HttpServerConfig};
//! use std::sync::Arc;
//!
//! # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
//! let config = HttpServerConfig::new("127.0.0.1:0".parse().unwrap());
//! let server = HttpServer::bind(config, Arc::new(ChannelContainer::new())).await.unwrap();
//! println!("listening on http://{}", server.local_addr());
//! let stop = server.shutdown_handle();
//! let running = tokio::spawn(server.run());
//! // ... serve; then:
//! stop.shutdown();
//! running.await.unwrap().unwrap();
//! # });
//! ```

pub mod auth;
mod body;
mod config;
pub(crate) mod direct;
mod host;
mod metrics_server;
mod observe;
mod routes;
mod server;
mod service;
mod state;
mod stream;
mod tls;

pub use config::{HttpServerConfig, DEFAULT_MAX_BODY_BYTES};
pub use metrics_server::MetricsServer;
pub use observe::SNAPSHOT_EVENT;
pub use routes::{Route, ROUTES};
pub use server::HttpServer;
pub use service::{ApiBody, HttpService, ResponseFuture};
pub use tls::{TlsConfig, TlsReloader};

//! The defaults both servers share, defined once: the public `DEFAULT_*` constants and
//! the configs' defaults derive from these.

use std::time::Duration;

/// The default limit on one request (a Unix command, an HTTP body): a 1 MiB payload
/// plus 64 KiB for the rest of the JSON object (keys, ids, message type, escapes).
pub(crate) const MAX_REQUEST_BYTES: usize = (1 << 20) + (64 << 10);

/// The default number of connections a server serves at once.
pub(crate) const MAX_CONNECTIONS: usize = 16_384;

/// The default time shutdown waits for connections before cutting them.
pub(crate) const SHUTDOWN_GRACE: Duration = Duration::from_secs(5);

/// The default time a client may take to send a request.
pub(crate) const READ_TIMEOUT: Duration = Duration::from_secs(10);

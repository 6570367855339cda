//! What an accept loop does when `accept` fails.

use std::io;
use std::time::Duration;

/// How long an accept loop pauses after an `accept` failed for want of resources.
const ACCEPT_ERROR_PAUSE: Duration = Duration::from_millis(50);

/// What an accept loop does after `accept` failed with `error`: `None` to try again at
/// once (a signal interrupted it, or a client gave up while it waited in the backlog),
/// otherwise how long to pause first. Those other errors are most likely the process
/// out of file descriptors: accepting again at once would spin, and pausing lets open
/// connections finish and free some.
pub(crate) fn accept_error_pause(server: &'static str, error: &io::Error) -> Option<Duration> {
    match error.kind() {
        io::ErrorKind::Interrupted | io::ErrorKind::ConnectionAborted => {
            tracing::debug!(server, %error, "accept failed: trying again");
            None
        }
        _ => {
            tracing::warn!(server, %error, "accept failed");
            Some(ACCEPT_ERROR_PAUSE)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn transient_accept_errors_are_retried_at_once_and_the_others_after_a_pause() {
        for kind in [io::ErrorKind::Interrupted, io::ErrorKind::ConnectionAborted] {
            assert_eq!(accept_error_pause("test", &kind.into()), None, "{kind:?}");
        }
        // EMFILE: the process is out of file descriptors.
        let emfile = io::Error::from_raw_os_error(24);
        assert_eq!(
            accept_error_pause("test", &emfile),
            Some(ACCEPT_ERROR_PAUSE)
        );
    }
}

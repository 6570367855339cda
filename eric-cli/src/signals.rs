//! Ctrl-C and SIGTERM, installed before anything observable happens.

use crate::error::CliError;
use std::future::Future;
use std::pin::Pin;
use std::task::Poll;

/// A pending [`eric_socket::termination_signal`] whose handlers are already installed.
pub type Termination = Pin<Box<dyn Future<Output = ()> + Send>>;

/// Installs the SIGINT and SIGTERM handlers now and returns the future that completes on
/// either signal.
///
/// `termination_signal` installs its handlers when first polled. Polling it once here
/// means a signal that arrives right after the socket file appears (a script or test
/// that starts `eric serve` and stops it at once) is handled, instead of killing the
/// process with the default action.
pub async fn install() -> Result<Termination, CliError> {
    let mut signal = Box::pin(eric_socket::termination_signal());
    let first = std::future::poll_fn(|cx| Poll::Ready(signal.as_mut().poll(cx))).await;
    match first {
        Poll::Ready(Err(error)) => Err(CliError::io("cannot install signal handlers", error)),
        // A signal already came (it cannot, in practice: handlers were just installed).
        Poll::Ready(Ok(())) => Ok(Box::pin(async {})),
        Poll::Pending => Ok(Box::pin(async move {
            if let Err(error) = signal.await {
                tracing::warn!(%error, "signal handler failed");
            }
        })),
    }
}

//! The tokio timer for eric-core's stream delay.

use std::future::Future;
use std::pin::Pin;
use std::time::Duration;

/// [`eric_core::Timer`] on `tokio::time::sleep`: give it to
/// [`eric_core::StreamDelay::new`] to pace streams polled in a tokio runtime.
#[derive(Clone, Copy, Debug, Default)]
pub struct TokioTimer;

impl eric_core::Timer for TokioTimer {
    fn sleep(&self, duration: Duration) -> Pin<Box<dyn Future<Output = ()> + Send>> {
        Box::pin(tokio::time::sleep(duration))
    }
}

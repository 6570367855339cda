//! Bounded waits, for every socket test (included by `tests/common`, which the HTTP
//! tests reach through `tests/http_support`).
#![allow(dead_code)]

use std::future::Future;
use std::time::Duration;

/// The longest any single wait in these tests may take before the test fails.
pub const WAIT: Duration = Duration::from_secs(10);

/// Fails the test if `future` takes longer than [`WAIT`].
pub async fn bounded<F: Future>(what: &str, future: F) -> F::Output {
    match tokio::time::timeout(WAIT, future).await {
        Ok(output) => output,
        Err(_) => panic!("timed out after {WAIT:?}: {what}"),
    }
}

/// Polls `condition` until it holds; fails the test after [`WAIT`].
pub async fn eventually(what: &str, mut condition: impl FnMut() -> bool) {
    let deadline = tokio::time::Instant::now() + WAIT;
    while !condition() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "still false after {WAIT:?}: {what}"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

//! The count of a Unix server's open connections.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

/// A live count of a server's open connections (streams included); clones observe the
/// same server. For monitoring, and for tests that check no connection is leaked.
#[derive(Clone, Debug, Default)]
pub struct ConnectionGauge {
    open: Arc<AtomicUsize>,
}

impl ConnectionGauge {
    /// The number of connections being served now.
    pub fn open(&self) -> usize {
        self.open.load(Ordering::Acquire)
    }

    pub(crate) fn enter(&self) -> ConnectionGuard {
        self.open.fetch_add(1, Ordering::AcqRel);
        ConnectionGuard(self.clone())
    }
}

/// Counts one connection as open until dropped (also when its task is aborted).
pub(crate) struct ConnectionGuard(ConnectionGauge);

impl Drop for ConnectionGuard {
    fn drop(&mut self) {
        self.0.open.fetch_sub(1, Ordering::AcqRel);
    }
}

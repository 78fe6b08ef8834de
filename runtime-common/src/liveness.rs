//! Counting open connections, so that shutdown can wait (bounded) until every session
//! has said goodbye.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

/// The number of open connections, shared by all listeners and threads.
#[derive(Debug, Clone, Default)]
pub struct Liveness(Arc<AtomicUsize>);

/// Held by a connection while it is open.
#[derive(Debug)]
pub struct LivenessGuard(Arc<AtomicUsize>);

impl Liveness {
    /// Counts a new connection until the guard is dropped.
    pub fn enter(&self) -> LivenessGuard {
        self.0.fetch_add(1, Ordering::AcqRel);
        LivenessGuard(self.0.clone())
    }

    /// Open connections now.
    pub fn open(&self) -> usize {
        self.0.load(Ordering::Acquire)
    }
}

impl Drop for LivenessGuard {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

//! Counters fed by the engine's instrumentation events; exported by the HTTP
//! listener in a later step, summarised in the log at shutdown for now.

use std::sync::atomic::{AtomicU64, Ordering};

use meerkat_engine::instrument::{Direction, Event};

/// Process-wide counters.
#[derive(Debug, Default)]
pub struct Metrics {
    elements_in: AtomicU64,
    elements_out: AtomicU64,
    bytes_in: AtomicU64,
    bytes_out: AtomicU64,
    auth_ok: AtomicU64,
    auth_failed: AtomicU64,
}

impl Metrics {
    /// Accounts for one event.
    pub fn record(&self, event: &Event) {
        match event {
            Event::Element {
                direction: Direction::In,
                bytes,
                ..
            } => {
                self.elements_in.fetch_add(1, Ordering::Relaxed);
                self.bytes_in.fetch_add(*bytes as u64, Ordering::Relaxed);
            }
            Event::Element {
                direction: Direction::Out,
                bytes,
                ..
            } => {
                self.elements_out.fetch_add(1, Ordering::Relaxed);
                self.bytes_out.fetch_add(*bytes as u64, Ordering::Relaxed);
            }
            Event::Auth { success: true, .. } => {
                self.auth_ok.fetch_add(1, Ordering::Relaxed);
            }
            Event::Auth { success: false, .. } => {
                self.auth_failed.fetch_add(1, Ordering::Relaxed);
            }
            Event::ShaperDelay { .. } => {}
        }
    }

    /// Logs the totals.
    pub fn log_summary(&self) {
        tracing::info!(
            elements_in = self.elements_in.load(Ordering::Relaxed),
            elements_out = self.elements_out.load(Ordering::Relaxed),
            bytes_in = self.bytes_in.load(Ordering::Relaxed),
            bytes_out = self.bytes_out.load(Ordering::Relaxed),
            auth_ok = self.auth_ok.load(Ordering::Relaxed),
            auth_failed = self.auth_failed.load(Ordering::Relaxed),
            "traffic totals"
        );
    }
}

//! Counters fed by the engine's instrumentation events, by `connection_type` (c2s,
//! s2s, component) as the `xmpp_element_in` / `xmpp_element_out` labels say;
//! exported by the HTTP listener in a later step, summarised in the log at shutdown
//! for now.

use std::sync::atomic::{AtomicU64, Ordering};

use meerkat_engine::instrument::{ConnectionType, Direction, Event};

/// The connection types, in the order of the per-type counters.
const TYPES: [ConnectionType; 3] = [
    ConnectionType::C2s,
    ConnectionType::S2s,
    ConnectionType::Component,
];

fn slot(t: ConnectionType) -> usize {
    match t {
        ConnectionType::C2s => 0,
        ConnectionType::S2s => 1,
        ConnectionType::Component => 2,
    }
}

/// Element counters of one connection type.
#[derive(Debug, Default)]
struct Elements {
    elements_in: AtomicU64,
    elements_out: AtomicU64,
    bytes_in: AtomicU64,
    bytes_out: AtomicU64,
}

/// Process-wide counters.
#[derive(Debug, Default)]
pub struct Metrics {
    by_type: [Elements; 3],
    auth_ok: AtomicU64,
    auth_failed: AtomicU64,
}

impl Metrics {
    /// Accounts for one event.
    pub fn record(&self, event: &Event) {
        match event {
            Event::Element {
                direction,
                connection_type,
                bytes,
                ..
            } => {
                let e = &self.by_type[slot(*connection_type)];
                let (count, size) = match direction {
                    Direction::In => (&e.elements_in, &e.bytes_in),
                    Direction::Out => (&e.elements_out, &e.bytes_out),
                };
                count.fetch_add(1, Ordering::Relaxed);
                size.fetch_add(*bytes as u64, Ordering::Relaxed);
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

    /// Elements counted for `connection_type` in `direction`.
    pub fn elements(&self, connection_type: ConnectionType, direction: Direction) -> u64 {
        let e = &self.by_type[slot(connection_type)];
        match direction {
            Direction::In => e.elements_in.load(Ordering::Relaxed),
            Direction::Out => e.elements_out.load(Ordering::Relaxed),
        }
    }

    /// Logs the totals, one line per connection type that saw traffic.
    pub fn log_summary(&self) {
        for t in TYPES {
            let e = &self.by_type[slot(t)];
            let (elements_in, elements_out) = (
                e.elements_in.load(Ordering::Relaxed),
                e.elements_out.load(Ordering::Relaxed),
            );
            if elements_in + elements_out == 0 && t != ConnectionType::C2s {
                continue;
            }
            tracing::info!(
                connection_type = t.as_str(),
                elements_in,
                elements_out,
                bytes_in = e.bytes_in.load(Ordering::Relaxed),
                bytes_out = e.bytes_out.load(Ordering::Relaxed),
                "traffic totals"
            );
        }
        tracing::info!(
            auth_ok = self.auth_ok.load(Ordering::Relaxed),
            auth_failed = self.auth_failed.load(Ordering::Relaxed),
            "authentication totals"
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use meerkat_engine::instrument::ElementKind;

    #[test]
    fn elements_are_counted_by_connection_type_and_direction() {
        let m = Metrics::default();
        let element = |direction, connection_type| Event::Element {
            direction,
            connection_type,
            host_type: "localhost".into(),
            kind: ElementKind::Message,
            bytes: 10,
        };
        m.record(&element(Direction::In, ConnectionType::S2s));
        m.record(&element(Direction::In, ConnectionType::S2s));
        m.record(&element(Direction::Out, ConnectionType::Component));
        assert_eq!(m.elements(ConnectionType::S2s, Direction::In), 2);
        assert_eq!(m.elements(ConnectionType::S2s, Direction::Out), 0);
        assert_eq!(m.elements(ConnectionType::Component, Direction::Out), 1);
        assert_eq!(m.elements(ConnectionType::C2s, Direction::In), 0);
    }
}

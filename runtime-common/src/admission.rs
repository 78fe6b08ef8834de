//! Who may open a connection on a listener: at most `max_connections` at once, at
//! most `max_connections_per_ip` from one source address (MongooseIM's
//! `listen.*.max_connections`, and Meerkat's per-address limit beside it).
//!
//! One [`Admission`] exists per configured listener and is shared by every thread and
//! executor that accepts on it (glommio has one SO_REUSEPORT listener per executor,
//! all counting here), so the limits hold for the listener as a whole. A connection
//! counts from its accept until its [`Admitted`] guard is dropped, whatever ends it.
//!
//! A connection past a limit is not silently dropped: the adapter answers it with
//! [`crate::refusal_bytes`] (the stream header, a stream error with a text, the
//! closing tag; RFC 6120 §4.9.1.1) and logs it. Answering costs a short task per
//! refused connection, so the answers themselves are bounded: past
//! [`MAX_ANSWERING`] refusals still being written on a listener, further refused
//! sockets are closed at once.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use meerkat_engine::stream::StreamError;

/// A listener's limits, from its config table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConnectionLimits {
    /// `max_connections`: connections open at once on the listener; `None`: no limit.
    pub max_connections: Option<usize>,
    /// `max_connections_per_ip`: connections open at once from one source address;
    /// `None`: no limit.
    pub max_connections_per_ip: Option<usize>,
    /// `backlog`: the kernel's queue of connections not yet accepted (`listen(2)`).
    pub backlog: u32,
    /// `max_send_queue_size`: bytes a connection may have waiting for its peer to
    /// read before it is closed (see [`crate::Outbox`]); `None`: no limit.
    pub max_send_queue: Option<usize>,
}

/// MongooseIM's default `listen.*.backlog`.
pub const DEFAULT_BACKLOG: u32 = 1024;

impl Default for ConnectionLimits {
    fn default() -> Self {
        Self {
            max_connections: None,
            max_connections_per_ip: None,
            backlog: DEFAULT_BACKLOG,
            max_send_queue: Some(crate::DEFAULT_MAX_SEND_QUEUE),
        }
    }
}

/// Refused connections whose answer may be in flight at once on one listener; past
/// it, refused sockets are closed without an answer (a flood must not turn the
/// answers into the resource exhaustion the limit prevents).
pub const MAX_ANSWERING: usize = 256;

/// How long a refused connection may take to read its answer and close before the
/// socket is dropped.
pub const REFUSAL_LINGER: Duration = Duration::from_secs(2);

/// How often at most a listener logs a warning about refused connections (each
/// refusal is also logged at debug level).
const WARN_EVERY: Duration = Duration::from_secs(1);

/// The connection count of one listener, shared by every thread accepting on it.
#[derive(Debug)]
pub struct Admission {
    limits: ConnectionLimits,
    open: AtomicUsize,
    /// Open connections per source address; only kept with a per-address limit.
    per_ip: Mutex<HashMap<IpAddr, usize>>,
    answering: AtomicUsize,
    refused: AtomicU64,
    /// When the last warning was logged, and how many refusals it counted.
    last_warning: Mutex<(Option<Instant>, u64)>,
}

/// Why a connection was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// The listener has `max_connections` open.
    ListenerFull(usize),
    /// The source address has `max_connections_per_ip` open.
    AddressFull(usize),
}

impl Refusal {
    /// RFC 6120 §4.9.3: a full server lacks the resources to serve the stream
    /// (`resource-constraint`, §4.9.3.17); an address over its share breaks a local
    /// policy (`policy-violation`, §4.9.3.14).
    pub fn stream_error(self) -> StreamError {
        match self {
            Refusal::ListenerFull(_) => StreamError::ResourceConstraint,
            Refusal::AddressFull(_) => StreamError::PolicyViolation,
        }
    }

    /// The `<text/>` of the stream error.
    pub fn text(self) -> String {
        match self {
            Refusal::ListenerFull(max) => format!("too many connections ({max} open); try again later"),
            Refusal::AddressFull(max) => format!("too many connections from your address (at most {max})"),
        }
    }
}

/// A refused connection, with (when affordable) the right to answer it.
#[derive(Debug)]
pub struct Refused {
    /// Why.
    pub reason: Refusal,
    /// Held while the answer is written; `None`: too many answers are in flight,
    /// close the socket at once.
    pub answer: Option<Answering>,
}

/// Counts one refused connection being answered; released on drop.
#[derive(Debug)]
pub struct Answering(Arc<Admission>);

impl Drop for Answering {
    fn drop(&mut self) {
        self.0.answering.fetch_sub(1, Ordering::AcqRel);
    }
}

/// An admitted connection; it stops counting when this is dropped.
#[derive(Debug)]
pub struct Admitted {
    admission: Arc<Admission>,
    peer: IpAddr,
}

impl Drop for Admitted {
    fn drop(&mut self) {
        self.admission.release(self.peer);
    }
}

impl Admission {
    /// The count of a listener with `limits`.
    pub fn new(limits: ConnectionLimits) -> Arc<Self> {
        Arc::new(Self {
            limits,
            open: AtomicUsize::new(0),
            per_ip: Mutex::new(HashMap::new()),
            answering: AtomicUsize::new(0),
            refused: AtomicU64::new(0),
            last_warning: Mutex::new((None, 0)),
        })
    }

    /// The listener's limits.
    pub fn limits(&self) -> ConnectionLimits {
        self.limits
    }

    /// Connections open now.
    pub fn open(&self) -> usize {
        self.open.load(Ordering::Acquire)
    }

    /// Connections refused since start.
    pub fn refused(&self) -> u64 {
        self.refused.load(Ordering::Relaxed)
    }

    /// Counts a connection from `peer` in, or says why not. IPv4 addresses mapped
    /// into IPv6 count as the IPv4 address.
    pub fn admit(self: &Arc<Self>, peer: IpAddr) -> Result<Admitted, Refused> {
        let peer = peer.to_canonical();
        let open = self.open.fetch_add(1, Ordering::AcqRel) + 1;
        if let Some(max) = self.limits.max_connections {
            if open > max {
                self.open.fetch_sub(1, Ordering::AcqRel);
                return Err(self.refuse(peer, Refusal::ListenerFull(max)));
            }
        }
        if let Some(max) = self.limits.max_connections_per_ip {
            let mut per_ip = self.per_ip.lock().unwrap_or_else(|e| e.into_inner());
            let count = per_ip.entry(peer).or_insert(0);
            if *count >= max {
                drop(per_ip);
                self.open.fetch_sub(1, Ordering::AcqRel);
                return Err(self.refuse(peer, Refusal::AddressFull(max)));
            }
            *count += 1;
        }
        Ok(Admitted {
            admission: self.clone(),
            peer,
        })
    }

    fn release(&self, peer: IpAddr) {
        if self.limits.max_connections_per_ip.is_some() {
            let mut per_ip = self.per_ip.lock().unwrap_or_else(|e| e.into_inner());
            if let Some(count) = per_ip.get_mut(&peer) {
                *count -= 1;
                if *count == 0 {
                    per_ip.remove(&peer);
                }
            }
        }
        self.open.fetch_sub(1, Ordering::AcqRel);
    }

    fn refuse(self: &Arc<Self>, peer: IpAddr, reason: Refusal) -> Refused {
        let total = self.refused.fetch_add(1, Ordering::Relaxed) + 1;
        tracing::debug!(%peer, ?reason, "connection refused");
        {
            let mut last = self.last_warning.lock().unwrap_or_else(|e| e.into_inner());
            let now = Instant::now();
            if last.0.is_none_or(|at| now.duration_since(at) >= WARN_EVERY) {
                tracing::warn!(
                    %peer,
                    reason = %reason.text(),
                    refused_since_last_warning = total - last.1,
                    refused_total = total,
                    "connection refused: listener limit reached"
                );
                *last = (Some(now), total);
            }
        }
        let answering = self.answering.fetch_add(1, Ordering::AcqRel);
        let answer = if answering < MAX_ANSWERING {
            Some(Answering(self.clone()))
        } else {
            self.answering.fetch_sub(1, Ordering::AcqRel);
            None
        };
        Refused { reason, answer }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn the_listener_limit_counts_every_address_and_frees_on_drop() {
        let a = Admission::new(ConnectionLimits {
            max_connections: Some(2),
            ..Default::default()
        });
        let one = a.admit(ip("10.0.0.1")).unwrap();
        let _two = a.admit(ip("10.0.0.2")).unwrap();
        let refused = a.admit(ip("10.0.0.3")).unwrap_err();
        assert_eq!(refused.reason, Refusal::ListenerFull(2));
        assert_eq!(refused.reason.stream_error(), StreamError::ResourceConstraint);
        assert_eq!(a.open(), 2);
        drop(one);
        assert_eq!(a.open(), 1);
        assert!(a.admit(ip("10.0.0.3")).is_ok());
        assert_eq!(a.refused(), 1);
    }

    #[test]
    fn the_per_address_limit_leaves_other_addresses_alone() {
        let a = Admission::new(ConnectionLimits {
            max_connections_per_ip: Some(1),
            ..Default::default()
        });
        let first = a.admit(ip("192.0.2.1")).unwrap();
        let refused = a.admit(ip("192.0.2.1")).unwrap_err();
        assert_eq!(refused.reason, Refusal::AddressFull(1));
        assert_eq!(refused.reason.stream_error(), StreamError::PolicyViolation);
        // An IPv4 address mapped into IPv6 is the same address.
        assert!(a.admit(ip("::ffff:192.0.2.1")).is_err());
        let _other = a.admit(ip("192.0.2.2")).unwrap();
        drop(first);
        assert!(a.admit(ip("192.0.2.1")).is_ok());
        assert!(a.per_ip.lock().unwrap().get(&ip("192.0.2.1")).is_none());
    }

    #[test]
    fn answers_to_refusals_are_bounded() {
        let a = Admission::new(ConnectionLimits {
            max_connections: Some(0),
            ..Default::default()
        });
        let held: Vec<Refused> = (0..MAX_ANSWERING)
            .map(|_| a.admit(ip("10.0.0.1")).unwrap_err())
            .collect();
        assert!(held.iter().all(|r| r.answer.is_some()));
        assert!(a.admit(ip("10.0.0.1")).unwrap_err().answer.is_none());
        drop(held);
        assert!(a.admit(ip("10.0.0.1")).unwrap_err().answer.is_some());
    }

    #[test]
    fn counting_is_exact_across_threads() {
        let a = Admission::new(ConnectionLimits {
            max_connections: Some(50),
            max_connections_per_ip: Some(30),
            ..Default::default()
        });
        let admitted = std::sync::Mutex::new(Vec::new());
        std::thread::scope(|s| {
            for t in 0..4u8 {
                let (a, admitted) = (&a, &admitted);
                s.spawn(move || {
                    for i in 0..100u8 {
                        let peer = IpAddr::from([10, 0, t % 2, i % 2]);
                        if let Ok(g) = a.admit(peer) {
                            admitted.lock().unwrap().push(g);
                        }
                    }
                });
            }
        });
        let admitted = admitted.into_inner().unwrap();
        assert_eq!(admitted.len(), 50);
        assert_eq!(a.open(), 50);
        drop(admitted);
        assert_eq!(a.open(), 0);
        assert!(a.per_ip.lock().unwrap().is_empty());
    }
}

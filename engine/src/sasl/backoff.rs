//! A server-wide backoff after failed authentications, per source address, so that
//! guessing passwords is slow whatever the number of connections used.
//!
//! RFC 6120 §6.4.5 lets a server close a stream after some failed attempts (each
//! C2S connection does, after three); that alone costs an attacker only a
//! reconnect. Here the failures of every connection from one address are counted
//! together: once an address has `after_failures` failures, its next attempt must
//! wait `initial_delay`, doubling with each further failure up to `max_delay`.
//! An attempt made before the wait is over is not checked at all: it gets
//! `<temporary-auth-failure/>` (RFC 6120 §6.5.12, "try again later"). An address
//! is forgotten once `max_delay` has passed since its last failure.
//!
//! Counting is per address, never per account: a per-account backoff would let
//! anyone lock a user out by failing on purpose.
//!
//! The state is plain data with time as an input; [`SharedAuthBackoff`] puts it
//! behind a lock so that every connection of every thread feeds the same counts.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Settings of the backoff (`[auth.backoff]`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BackoffConfig {
    /// Failures from one address allowed before it has to wait.
    pub after_failures: u32,
    /// The wait after the `after_failures`-th failure; doubled for each one more.
    pub initial_delay: Duration,
    /// The longest wait; also how long an address's failures are remembered.
    pub max_delay: Duration,
}

impl Default for BackoffConfig {
    fn default() -> Self {
        Self {
            after_failures: 5,
            initial_delay: Duration::from_secs(1),
            max_delay: Duration::from_secs(300),
        }
    }
}

/// Addresses tracked at most; past it, addresses whose failures are forgotten are
/// dropped first, and new addresses are not tracked while none can be.
pub const MAX_TRACKED: usize = 100_000;

#[derive(Debug, Clone, Copy)]
struct Record {
    failures: u32,
    last: Instant,
}

/// Failed authentications per source address.
#[derive(Debug)]
pub struct AuthBackoff {
    config: BackoffConfig,
    records: HashMap<IpAddr, Record>,
}

impl AuthBackoff {
    /// An empty table.
    pub fn new(config: BackoffConfig) -> Self {
        Self {
            config,
            records: HashMap::new(),
        }
    }

    /// The settings.
    pub fn config(&self) -> BackoffConfig {
        self.config
    }

    /// Until when `peer` must wait before its next attempt is checked; `None`: it
    /// may try now.
    pub fn blocked_until(&self, peer: IpAddr, now: Instant) -> Option<Instant> {
        let record = self.live_record(peer.to_canonical(), now)?;
        let until = record.last + self.delay(record.failures)?;
        (now < until).then_some(until)
    }

    /// A failed authentication from `peer` at `now`; returns until when it must now
    /// wait, if it must.
    pub fn record_failure(&mut self, peer: IpAddr, now: Instant) -> Option<Instant> {
        let peer = peer.to_canonical();
        let failures = self.live_record(peer, now).map_or(0, |r| r.failures) + 1;
        if !self.records.contains_key(&peer) && self.records.len() >= MAX_TRACKED {
            self.forget_old(now);
            if self.records.len() >= MAX_TRACKED {
                tracing::warn!(%peer, "authentication backoff table full: not tracking this address");
                return None;
            }
        }
        self.records.insert(peer, Record { failures, last: now });
        let until = now + self.delay(failures)?;
        if failures == self.config.after_failures || self.delay(failures) == Some(self.config.max_delay) {
            tracing::warn!(%peer, failures, wait_ms = (until - now).as_millis() as u64, "authentication backoff");
        } else {
            tracing::info!(%peer, failures, wait_ms = (until - now).as_millis() as u64, "authentication backoff");
        }
        Some(until)
    }

    /// Addresses tracked now.
    pub fn tracked(&self) -> usize {
        self.records.len()
    }

    /// Drops the addresses whose failures are forgotten at `now`.
    pub fn forget_old(&mut self, now: Instant) {
        let keep = self.config.max_delay;
        self.records
            .retain(|_, r| now.saturating_duration_since(r.last) < keep);
    }

    fn live_record(&self, peer: IpAddr, now: Instant) -> Option<Record> {
        self.records
            .get(&peer)
            .filter(|r| now.saturating_duration_since(r.last) < self.config.max_delay)
            .copied()
    }

    /// The wait after `failures` failures.
    fn delay(&self, failures: u32) -> Option<Duration> {
        let over = failures.checked_sub(self.config.after_failures)?;
        let factor = 1u32.checked_shl(over.min(31)).unwrap_or(u32::MAX);
        Some(
            self.config
                .initial_delay
                .saturating_mul(factor)
                .min(self.config.max_delay),
        )
    }
}

/// An [`AuthBackoff`] shared by every connection of the server, whatever its thread.
#[derive(Debug)]
pub struct SharedAuthBackoff(Mutex<AuthBackoff>);

impl SharedAuthBackoff {
    /// An empty shared table.
    pub fn new(config: BackoffConfig) -> Self {
        Self(Mutex::new(AuthBackoff::new(config)))
    }

    /// See [`AuthBackoff::blocked_until`].
    pub fn blocked_until(&self, peer: IpAddr, now: Instant) -> Option<Instant> {
        self.lock().blocked_until(peer, now)
    }

    /// See [`AuthBackoff::record_failure`].
    pub fn record_failure(&self, peer: IpAddr, now: Instant) -> Option<Instant> {
        self.lock().record_failure(peer, now)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, AuthBackoff> {
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config() -> BackoffConfig {
        BackoffConfig {
            after_failures: 3,
            initial_delay: Duration::from_secs(2),
            max_delay: Duration::from_secs(60),
        }
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn the_wait_starts_after_the_allowed_failures_and_doubles() {
        let t0 = Instant::now();
        let mut b = AuthBackoff::new(config());
        let a = ip("203.0.113.7");
        assert_eq!(b.record_failure(a, t0), None);
        assert_eq!(b.record_failure(a, t0), None);
        assert_eq!(b.blocked_until(a, t0), None);
        assert_eq!(b.record_failure(a, t0), Some(t0 + Duration::from_secs(2)));
        assert_eq!(
            b.blocked_until(a, t0 + Duration::from_secs(1)),
            Some(t0 + Duration::from_secs(2))
        );
        let t1 = t0 + Duration::from_secs(2);
        assert_eq!(b.blocked_until(a, t1), None);
        assert_eq!(b.record_failure(a, t1), Some(t1 + Duration::from_secs(4)));
        let t2 = t1 + Duration::from_secs(4);
        assert_eq!(b.record_failure(a, t2), Some(t2 + Duration::from_secs(8)));
        // Other addresses are not affected.
        assert_eq!(b.blocked_until(ip("203.0.113.8"), t2), None);
        // The same address mapped into IPv6 is the same address.
        assert!(b.blocked_until(ip("::ffff:203.0.113.7"), t2).is_some());
    }

    #[test]
    fn the_wait_is_capped_and_failures_are_forgotten() {
        let t0 = Instant::now();
        let mut b = AuthBackoff::new(config());
        let a = ip("2001:db8::1");
        let mut until = None;
        for _ in 0..20 {
            until = b.record_failure(a, t0);
        }
        assert_eq!(until, Some(t0 + Duration::from_secs(60)));
        let later = t0 + Duration::from_secs(60);
        assert_eq!(b.blocked_until(a, later), None);
        // Forgotten: the count starts again.
        assert_eq!(b.record_failure(a, later), None);
        b.forget_old(later + Duration::from_secs(60));
        assert_eq!(b.tracked(), 0);
    }

    #[test]
    fn shared_counts_are_the_same_from_every_thread() {
        let t0 = Instant::now();
        let shared = SharedAuthBackoff::new(config());
        std::thread::scope(|s| {
            for _ in 0..3 {
                s.spawn(|| shared.record_failure(ip("198.51.100.1"), t0));
            }
        });
        assert!(shared.blocked_until(ip("198.51.100.1"), t0).is_some());
    }
}

//! Counters shared by all sessions: plain atomics, a lock-free log-linear histogram, and a
//! small map of failure reasons (touched only on failures).

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::Mutex;

/// Linear sub-buckets per power of two: relative error of a recorded value is below 1/32.
const SUB_BITS: u32 = 6;
const HALF: usize = 1 << (SUB_BITS - 1);
const BUCKETS: usize = (64 - SUB_BITS as usize + 1) * HALF + HALF;

/// Histogram of u64 values (microseconds here) with ~3% resolution, safe to record into
/// from many tasks at once.
pub struct Histogram {
    counts: Box<[AtomicU64]>,
    total: AtomicU64,
    max: AtomicU64,
    sum: AtomicU64,
}

fn index(v: u64) -> usize {
    if v < (1 << SUB_BITS) {
        return v as usize;
    }
    let e = 63 - v.leading_zeros();
    let shift = e - SUB_BITS + 1;
    let m = (v >> shift) as usize;
    ((shift as usize) << (SUB_BITS - 1)) + m
}

/// Highest value that falls into bucket `idx`.
fn bucket_high(idx: usize) -> u64 {
    if idx < (1 << SUB_BITS) {
        return idx as u64;
    }
    let shift = (idx >> (SUB_BITS - 1)) - 1;
    let m = (idx & (HALF - 1)) + HALF;
    (((m as u64) + 1) << shift) - 1
}

impl Default for Histogram {
    fn default() -> Self {
        Self::new()
    }
}

impl Histogram {
    pub fn new() -> Self {
        Histogram {
            counts: (0..BUCKETS).map(|_| AtomicU64::new(0)).collect(),
            total: AtomicU64::new(0),
            max: AtomicU64::new(0),
            sum: AtomicU64::new(0),
        }
    }

    pub fn record(&self, v: u64) {
        self.counts[index(v)].fetch_add(1, Relaxed);
        self.total.fetch_add(1, Relaxed);
        self.sum.fetch_add(v, Relaxed);
        self.max.fetch_max(v, Relaxed);
    }

    pub fn count(&self) -> u64 {
        self.total.load(Relaxed)
    }

    pub fn max(&self) -> u64 {
        self.max.load(Relaxed)
    }

    pub fn mean(&self) -> f64 {
        let n = self.count();
        if n == 0 {
            0.0
        } else {
            self.sum.load(Relaxed) as f64 / n as f64
        }
    }

    /// Value at quantile `q` (0..=1): the upper edge of the bucket holding it, capped at max.
    pub fn quantile(&self, q: f64) -> u64 {
        let n = self.count();
        if n == 0 {
            return 0;
        }
        let rank = ((q * n as f64).ceil() as u64).clamp(1, n);
        let mut seen = 0;
        for (i, c) in self.counts.iter().enumerate() {
            seen += c.load(Relaxed);
            if seen >= rank {
                return bucket_high(i).min(self.max());
            }
        }
        self.max()
    }
}

/// Reason -> count, for failures. Keys must be low-cardinality strings.
#[derive(Default)]
pub struct Reasons(Mutex<BTreeMap<String, u64>>);

impl Reasons {
    pub fn add(&self, reason: &str) {
        let mut m = self.0.lock().unwrap_or_else(|e| e.into_inner());
        *m.entry(reason.to_string()).or_insert(0) += 1;
    }

    pub fn snapshot(&self) -> BTreeMap<String, u64> {
        self.0.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }
}

#[derive(Default)]
pub struct Stats {
    // initial setup
    pub established: AtomicU64,
    pub failed: AtomicU64,
    pub failures: Reasons,
    pub setup_us: Histogram,
    /// Sessions with a setup attempt under way.
    pub in_flight: AtomicU64,
    /// Sessions that were established and then lost their connection unasked.
    pub dropped: AtomicU64,
    pub drop_reasons: Reasons,

    // chat messages, or presence updates in the presence scenario
    pub msg_sent: AtomicU64,
    /// Receipts the sent stanzas should cause: one per chat message, one per online contact
    /// for a presence update.
    pub msg_expected: AtomicU64,
    /// Distinct receipts by an expected receiver.
    pub msg_received: AtomicU64,
    /// This run's stanzas that came back to their own sender (presence, RFC 6121 §4.4.2).
    pub msg_own: AtomicU64,
    pub msg_duplicates: AtomicU64,
    pub msg_reordered: AtomicU64,
    /// Messages with our marker but from another run (e.g. offline storage of an old run).
    pub msg_stale: AtomicU64,
    /// Messages of this run from someone other than the expected peer.
    pub msg_unexpected: AtomicU64,
    /// `<message type='error'>` or `<presence type='error'>` bounces.
    pub msg_errors: AtomicU64,
    pub latency_us: Histogram,
    /// Microseconds since the run's epoch of the last receipt.
    pub last_receipt_us: AtomicU64,
    /// Sessions currently in their sending loop (the drain waits for this to reach zero).
    pub senders_active: AtomicU64,

    // roster setup (presence scenario)
    /// Sessions whose roster became complete (every contact `both`, nothing else).
    pub roster_complete: AtomicU64,
    /// Sessions whose roster was complete at the first look (an earlier run set it up).
    pub roster_already: AtomicU64,
    /// `subscribe` requests sent.
    pub roster_subscribes: AtomicU64,
    /// `subscribe` requests received and accepted with `subscribed`.
    pub roster_accepted: AtomicU64,
    /// Roster items outside the ring removed.
    pub roster_removed: AtomicU64,
    /// Roster gets answered with an error.
    pub roster_errors: AtomicU64,

    // reconnect
    pub reconnects: AtomicU64,
    pub reconnect_failed: AtomicU64,
    pub reconnect_failures: Reasons,
    pub reconnect_us: Histogram,

    // login paths of the successful setups, initial and reconnects (see cli::Auth)
    pub logins_sasl1: AtomicU64,
    pub logins_sasl2: AtomicU64,
    pub logins_fast: AtomicU64,
    /// FAST tokens received in `<success/>`: asked for, or rotated by the server.
    pub fast_tokens: AtomicU64,

    // client internals
    pub pbkdf2_runs: AtomicU64,
    pub pbkdf2_cached: AtomicU64,
    pub iq_answered: AtomicU64,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn histogram_buckets_are_contiguous() {
        let mut prev_high = None;
        for idx in 0..BUCKETS - 1 {
            let hi = bucket_high(idx);
            if let Some(p) = prev_high {
                assert!(hi > p, "bucket {idx}");
            }
            assert_eq!(index(hi), idx, "high edge of {idx} maps back");
            assert_eq!(index(hi + 1), idx + 1, "next value starts the next bucket");
            prev_high = Some(hi);
            if hi > (1 << 62) {
                break;
            }
        }
        assert!(index(u64::MAX) < BUCKETS);
    }

    #[test]
    fn histogram_quantiles() {
        let h = Histogram::new();
        assert_eq!(h.quantile(0.5), 0);
        for v in 1..=1000u64 {
            h.record(v * 1000);
        }
        let p50 = h.quantile(0.5) as f64;
        assert!((p50 - 500_000.0).abs() / 500_000.0 < 0.035, "{p50}");
        let p99 = h.quantile(0.99) as f64;
        assert!((p99 - 990_000.0).abs() / 990_000.0 < 0.035, "{p99}");
        assert_eq!(h.quantile(1.0), 1_000_000);
        assert_eq!(h.max(), 1_000_000);
        assert_eq!(h.count(), 1000);
        assert!((h.mean() - 500_500.0).abs() < 1.0);
    }
}

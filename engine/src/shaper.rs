//! Named traffic shapers (MongooseIM's `[shaper.NAME] max_rate`): a token bucket in
//! bytes per second. Time is passed in; the shaper answers how long to stop reading.

use std::time::{Duration, Instant};

/// A token bucket limiting input to `max_rate` bytes per second, with a burst of one
/// second's worth.
#[derive(Debug, Clone)]
pub struct Shaper {
    max_rate: u64,
    /// Bytes that may still be read without delay; negative is debt.
    tokens: f64,
    last: Option<Instant>,
}

impl Shaper {
    /// A shaper allowing `max_rate` bytes per second.
    pub fn new(max_rate: u64) -> Self {
        Self {
            max_rate: max_rate.max(1),
            tokens: max_rate.max(1) as f64,
            last: None,
        }
    }

    /// The configured rate.
    pub fn max_rate(&self) -> u64 {
        self.max_rate
    }

    /// Accounts for `bytes` read at `now`; returns how long reading must pause so that
    /// the average stays at `max_rate` (`None`: no pause).
    pub fn consume(&mut self, bytes: usize, now: Instant) -> Option<Duration> {
        let rate = self.max_rate as f64;
        if let Some(last) = self.last {
            let elapsed = now.saturating_duration_since(last).as_secs_f64();
            self.tokens = (self.tokens + elapsed * rate).min(rate);
        }
        self.last = Some(now);
        self.tokens -= bytes as f64;
        if self.tokens >= 0.0 {
            None
        } else {
            Some(Duration::from_secs_f64(-self.tokens / rate))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn burst_then_delay_proportional_to_debt() {
        let t0 = Instant::now();
        let mut s = Shaper::new(1000);
        assert_eq!(s.consume(1000, t0), None);
        let d = s.consume(500, t0).unwrap();
        assert_eq!(d, Duration::from_millis(500));
        // After the pause has passed, the debt is paid.
        assert_eq!(s.consume(0, t0 + Duration::from_millis(500)), None);
    }

    #[test]
    fn refills_at_rate_but_not_beyond_burst() {
        let t0 = Instant::now();
        let mut s = Shaper::new(100);
        s.consume(100, t0);
        assert_eq!(s.consume(100, t0 + Duration::from_secs(60)), None);
        assert!(s.consume(1, t0 + Duration::from_secs(60)).is_some());
    }
}

//! Rate limits: of mrconn's own warnings (conn.c is silent where they speak,
//! and a connection that keeps failing retries every 250 ms), and of socket
//! closes (see [`Bucket`]).

use std::time::{Duration, Instant};

/// Whether an event at `now` may be reported, at most once per `period`
/// since the last reported one (`last`, which it then becomes).
pub fn due(last: &mut Option<Instant>, now: Instant, period: Duration) -> bool {
    let due = last.is_none_or(|at| now.saturating_duration_since(at) >= period);
    if due {
        *last = Some(now);
    }
    due
}

/// A token bucket: up to `burst` at once, then `per_ms` per millisecond.
#[derive(Debug, Clone, Copy)]
pub struct Bucket {
    tokens: u32,
    burst: u32,
    per_ms: u32,
    /// When the tokens were last counted.
    at: Option<Instant>,
}

impl Bucket {
    /// A full bucket.
    pub const fn new(burst: u32, per_ms: u32) -> Bucket {
        Bucket {
            tokens: burst,
            burst,
            per_ms,
            at: None,
        }
    }

    /// Takes a token at `now`, if there is one.
    pub fn take(&mut self, now: Instant) -> bool {
        let at = *self.at.get_or_insert(now);
        let ms = now.saturating_duration_since(at).as_millis();
        if ms > 0 {
            let earned = ms.saturating_mul(u128::from(self.per_ms));
            self.tokens = u32::try_from(earned)
                .unwrap_or(u32::MAX)
                .saturating_add(self.tokens)
                .min(self.burst);
            // Whole milliseconds only: the rest counts towards the next.
            self.at = Some(at + Duration::from_millis(ms as u64));
        }
        if self.tokens == 0 {
            return false;
        }
        self.tokens -= 1;
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_burst_then_a_steady_rate() {
        let t0 = Instant::now();
        let mut b = Bucket::new(3, 2);
        assert_eq!((0..5).filter(|_| b.take(t0)).count(), 3);
        let half = t0 + Duration::from_micros(900);
        assert!(!b.take(half), "under a millisecond earns nothing");
        let one = t0 + Duration::from_micros(1500);
        assert_eq!((0..5).filter(|_| b.take(one)).count(), 2);
        // The half millisecond left over counts: 2 ms since t0 by now.
        assert!(b.take(t0 + Duration::from_micros(2000)));
        // Idle for long: never more than the burst.
        let later = t0 + Duration::from_secs(10);
        assert_eq!((0..9).filter(|_| b.take(later)).count(), 3);
    }

    #[test]
    fn once_per_period() {
        let t0 = Instant::now();
        let period = Duration::from_secs(60);
        let mut last = None;
        assert!(due(&mut last, t0, period));
        assert!(!due(&mut last, t0 + Duration::from_secs(59), period));
        assert!(due(&mut last, t0 + period, period));
        assert!(!due(&mut last, t0 + Duration::from_secs(61), period));
        // A clock read earlier than the last report is not due.
        assert!(!due(&mut last, t0, period));
    }
}

//! The rate limit of mrconn's own warnings: conn.c is silent where they
//! speak, and a connection that keeps failing retries every 250 ms.

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

#[cfg(test)]
mod tests {
    use super::*;

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

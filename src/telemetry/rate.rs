//! A token-bucket rate limit for log lines: pure (the caller passes the time), so its
//! rules are unit tested without sleeping.

use std::time::Instant;

/// Lets up to `burst` lines through at once and `per_second` lines a second after that;
/// counts the lines it holds back, and hands that count to the next line let through
/// (so a reader sees "… and 4,211 more like it were suppressed").
#[derive(Debug, Clone)]
pub(crate) struct RateLimit {
    burst: f64,
    per_second: f64,
    tokens: f64,
    last: Option<Instant>,
    suppressed: u64,
}

impl RateLimit {
    /// A limit of `burst` lines at once, refilled at `per_second` lines a second.
    pub(crate) fn new(burst: u32, per_second: f64) -> Self {
        RateLimit {
            burst: f64::from(burst.max(1)),
            per_second,
            tokens: f64::from(burst.max(1)),
            last: None,
            suppressed: 0,
        }
    }

    /// `Some(suppressed)` when a line may be logged at `now`, with how many lines were
    /// held back since the last one let through; `None` when this one is held back.
    pub(crate) fn allow(&mut self, now: Instant) -> Option<u64> {
        if let Some(last) = self.last {
            let elapsed = now.saturating_duration_since(last);
            self.tokens = (self.tokens + elapsed.as_secs_f64() * self.per_second).min(self.burst);
        }
        self.last = Some(now);
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            Some(std::mem::take(&mut self.suppressed))
        } else {
            self.suppressed += 1;
            None
        }
    }

    /// Lines held back since the last one let through.
    #[cfg(test)]
    pub(crate) fn suppressed(&self) -> u64 {
        self.suppressed
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn burst_then_held_back_with_a_count() {
        let t0 = Instant::now();
        let mut r = RateLimit::new(3, 1.0);
        assert_eq!(r.allow(t0), Some(0));
        assert_eq!(r.allow(t0), Some(0));
        assert_eq!(r.allow(t0), Some(0));
        assert_eq!(r.allow(t0), None);
        assert_eq!(r.allow(t0), None);
        assert_eq!(r.suppressed(), 2);
        // One token back after a second: the next line carries the count.
        assert_eq!(r.allow(t0 + Duration::from_millis(999)), None);
        assert_eq!(r.allow(t0 + Duration::from_millis(2000)), Some(3));
        assert_eq!(r.suppressed(), 0);
    }

    #[test]
    fn refills_no_further_than_the_burst() {
        let t0 = Instant::now();
        let mut r = RateLimit::new(2, 10.0);
        let later = t0 + Duration::from_secs(3600);
        assert_eq!(r.allow(t0), Some(0));
        assert_eq!(r.allow(later), Some(0));
        assert_eq!(r.allow(later), Some(0));
        assert_eq!(r.allow(later), None);
    }

    #[test]
    fn a_flood_lets_through_about_the_rate() {
        let t0 = Instant::now();
        let mut r = RateLimit::new(10, 5.0);
        // 10,000 lines over 10 s: the burst plus about 5 a second.
        let through = (0..10_000)
            .filter(|i| r.allow(t0 + Duration::from_millis(*i)).is_some())
            .count();
        assert!((55..=61).contains(&through), "{through}");
    }

    #[test]
    fn time_going_backwards_is_no_refill() {
        let t0 = Instant::now() + Duration::from_secs(10);
        let mut r = RateLimit::new(1, 1.0);
        assert_eq!(r.allow(t0), Some(0));
        assert_eq!(r.allow(t0 - Duration::from_secs(5)), None);
    }
}

//! Exponential backoff with jitter, for job retries and for reconnecting.

use std::time::Duration;

/// Exponential backoff: `base * 2^(n-1)` capped at `max`, then spread by ±`jitter`
/// (a fraction, 0.0–1.0) so that many workers failing together do not retry together.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Backoff {
    /// Delay after the first failure. Defaults to 1 s for job retries.
    pub base: Duration,
    /// Largest delay. Defaults to 1 hour for job retries.
    pub max: Duration,
    /// Relative spread, 0.0–1.0. Defaults to 0.25 (±25%).
    pub jitter: f64,
}

impl Backoff {
    /// The default job retry backoff: 1 s, 2 s, 4 s … capped at 1 hour, ±25%.
    pub const RETRY: Backoff = Backoff {
        base: Duration::from_secs(1),
        max: Duration::from_secs(3600),
        jitter: 0.25,
    };

    /// The delay before try `n + 1` after `n` consecutive failures (`n >= 1`), with the
    /// jitter drawn from `unit`, a number in `[0, 1)`.
    pub fn delay_with(&self, n: u32, unit: f64) -> Duration {
        let exp = n.saturating_sub(1).min(62);
        let raw = self.base.as_secs_f64() * (1u64 << exp) as f64;
        let capped = raw.min(self.max.as_secs_f64());
        let spread = 1.0 + self.jitter.clamp(0.0, 1.0) * (2.0 * unit.clamp(0.0, 1.0) - 1.0);
        Duration::from_secs_f64((capped * spread).max(0.0))
    }

    /// [`delay_with`](Self::delay_with) using a random jitter.
    pub fn delay(&self, n: u32) -> Duration {
        self.delay_with(n, fastrand::f64())
    }
}

/// A delay spread uniformly by ±`fraction`, used for poll ticks so that many engines
/// started together do not poll in step.
pub(crate) fn jittered(d: Duration, fraction: f64) -> Duration {
    let spread = 1.0 + fraction * (2.0 * fastrand::f64() - 1.0);
    Duration::from_secs_f64(d.as_secs_f64() * spread)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn doubles_then_caps() {
        let b = Backoff {
            base: Duration::from_millis(100),
            max: Duration::from_secs(1),
            jitter: 0.0,
        };
        let d: Vec<u128> = (1..=6).map(|n| b.delay_with(n, 0.5).as_millis()).collect();
        assert_eq!(d, vec![100, 200, 400, 800, 1000, 1000]);
        assert_eq!(b.delay_with(u32::MAX, 0.5), Duration::from_secs(1));
        assert_eq!(b.delay_with(0, 0.5), Duration::from_millis(100));
    }

    #[test]
    fn jitter_spreads_within_bounds() {
        let b = Backoff {
            base: Duration::from_secs(10),
            max: Duration::from_secs(10),
            jitter: 0.25,
        };
        assert_eq!(b.delay_with(1, 0.0), Duration::from_millis(7500));
        assert_eq!(b.delay_with(1, 1.0), Duration::from_millis(12500));
        for _ in 0..100 {
            let d = b.delay(1);
            assert!(d >= Duration::from_millis(7500) && d <= Duration::from_millis(12500));
        }
    }

    #[test]
    fn jittered_stays_near() {
        for _ in 0..100 {
            let d = jittered(Duration::from_secs(1), 0.1);
            assert!(d >= Duration::from_millis(900) && d <= Duration::from_millis(1100));
        }
    }
}

//! Statement durations of the engine's hot statements (claims, outcome batches), kept in
//! lock-free log-scale histograms so `stats()` can show the slow tail: a stall hides in
//! a median or a throughput figure, not in a p99 and a max.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use super::Store;
use crate::stats::StatementTimes;

/// Buckets per doubling: 4 gives bucket bounds 19% apart.
const PER_DOUBLING: usize = 4;
/// From 1 µs to 2^28 µs (4.5 minutes), then one overflow bucket.
const BUCKETS: usize = 28 * PER_DOUBLING + 1;

/// One histogram of durations.
#[derive(Debug)]
pub(crate) struct Histogram {
    counts: [AtomicU64; BUCKETS],
    max_us: AtomicU64,
}

impl Default for Histogram {
    fn default() -> Self {
        Histogram {
            counts: std::array::from_fn(|_| AtomicU64::new(0)),
            max_us: AtomicU64::new(0),
        }
    }
}

/// The bucket holding `us` microseconds: bucket `b` holds durations up to
/// [`upper_us`]`(b)`.
fn bucket(us: u64) -> usize {
    let x = (us.max(1) as f64).log2() * PER_DOUBLING as f64;
    (x.ceil() as usize).min(BUCKETS - 1)
}

/// The largest duration bucket `b` holds, in µs.
fn upper_us(b: usize) -> f64 {
    2f64.powf(b as f64 / PER_DOUBLING as f64)
}

impl Histogram {
    pub(crate) fn record(&self, d: Duration) {
        let us = u64::try_from(d.as_micros()).unwrap_or(u64::MAX);
        self.counts[bucket(us)].fetch_add(1, Ordering::Relaxed);
        self.max_us.fetch_max(us, Ordering::Relaxed);
    }

    /// Count, p50, p99 and max so far. A percentile is its bucket's upper bound, but
    /// never more than the max.
    pub(crate) fn snapshot(&self) -> StatementTimes {
        let counts: Vec<u64> = self
            .counts
            .iter()
            .map(|c| c.load(Ordering::Relaxed))
            .collect();
        let total: u64 = counts.iter().sum();
        let max_us = self.max_us.load(Ordering::Relaxed);
        let pct = |q: f64| {
            if total == 0 {
                return Duration::ZERO;
            }
            let rank = ((total as f64) * q).ceil().max(1.0) as u64;
            let mut seen = 0;
            for (b, n) in counts.iter().enumerate() {
                seen += n;
                if seen >= rank {
                    return Duration::from_secs_f64(upper_us(b).min(max_us as f64) / 1e6);
                }
            }
            Duration::from_micros(max_us)
        };
        StatementTimes {
            count: total,
            p50: pct(0.5),
            p99: pct(0.99),
            max: Duration::from_micros(max_us),
        }
    }
}

/// The histograms of one pool's connections.
#[derive(Debug, Default)]
pub(crate) struct Timings {
    pub(crate) claims: Histogram,
    pub(crate) outcomes: Histogram,
}

impl Store {
    /// Claim and outcome-batch durations since the engine started.
    pub(crate) fn statement_times(&self) -> (StatementTimes, StatementTimes) {
        let t = &self.inner.timings;
        (t.claims.snapshot(), t.outcomes.snapshot())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_are_monotonic_and_cover_their_values() {
        for us in [1u64, 2, 3, 10, 999, 1000, 1001, 123_456, 10_000_000] {
            let b = bucket(us);
            assert!(
                upper_us(b) >= us as f64,
                "{us} µs in bucket {b} up to {}",
                upper_us(b)
            );
            assert!(
                b == 0 || upper_us(b - 1) < us as f64,
                "{us} µs: lower bucket fits"
            );
        }
        assert_eq!(bucket(u64::MAX), BUCKETS - 1);
    }

    #[test]
    fn percentiles_and_max() {
        let h = Histogram::default();
        assert_eq!(h.snapshot(), StatementTimes::default());
        for _ in 0..98 {
            h.record(Duration::from_micros(500));
        }
        h.record(Duration::from_millis(40));
        h.record(Duration::from_millis(433));
        let s = h.snapshot();
        assert_eq!(s.count, 100);
        assert!(s.p50 >= Duration::from_micros(500) && s.p50 < Duration::from_micros(600));
        assert!(s.p99 >= Duration::from_millis(40) && s.p99 < Duration::from_millis(48));
        assert_eq!(s.max, Duration::from_millis(433));
    }
}

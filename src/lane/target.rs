//! A lane's latency target: an AIMD controller of how much of their slots less urgent
//! lanes may use.
//!
//! The lane with the target reports the round trip of every claim that brought it jobs
//! (see `Dispatcher::claim_took` for why that, not the wait from `run_at`). The target
//! is a 99th percentile, so one wait over it in a hundred is allowed: every wait under
//! the target earns `1 / ALLOWED_ONE_IN` of an allowance (up to `ALLOWANCE`), every wait
//! over it spends one. A wait over the target with the allowance spent cuts the share
//! of their slots that less urgent lanes may fill in half (multiplicative decrease, at
//! most once per `COOLDOWN`, so one burst counts once and the cut has time to show); each
//! tick without a wait over the target for `CALM` gives back `STEP` of it (additive
//! increase), up to all of them. Fewer low slots mean smaller claims and outcome batches
//! and fewer busy backends, so the urgent lane's claim finds the database's CPU free.
//!
//! Cutting on every wait over the target (as the first version did) treated the target
//! as a maximum. Even as a p99, a target over a bulk lane that saturates the database
//! probes its way down to the floor (w6 with 1,000 low slots: see the README's
//! Performance section); a bound on the bulk lane's slots does better there.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

/// A cut takes effect only once at most this often.
const COOLDOWN: Duration = Duration::from_millis(100);
/// Without a wait over the target for this long, capacity is given back.
const CALM: Duration = Duration::from_millis(250);
/// Share given back per tick of calm.
const STEP: f64 = 1.0 / 16.0;
/// The smallest share: a throttled lane keeps at least this much of its slots (and at
/// least one slot).
pub(crate) const MIN_SHARE: f64 = 1.0 / 64.0;
/// Waits kept for the observed p99.
const WINDOW: usize = 256;
/// The target is a 99th percentile: one wait in this many may go over it.
const ALLOWED_ONE_IN: f64 = 100.0;
/// Waits over the target allowed in a row before the first cut (and the most the
/// allowance saves up).
const ALLOWANCE: f64 = 1.0;

/// The controller of one lane's `target_wait`.
#[derive(Debug, Clone)]
pub(crate) struct LatencyTarget {
    target: Duration,
    share: f64,
    recent: VecDeque<Duration>,
    last_cut: Option<Instant>,
    last_over: Option<Instant>,
    /// Waits over the target still allowed (see the module's doc).
    allowance: f64,
}

impl LatencyTarget {
    pub(crate) fn new(target: Duration) -> Self {
        LatencyTarget {
            target,
            share: 1.0,
            recent: VecDeque::with_capacity(WINDOW),
            last_cut: None,
            last_over: None,
            allowance: ALLOWANCE,
        }
    }

    /// The target wait.
    pub(crate) fn target(&self) -> Duration {
        self.target
    }

    /// The share of their slots less urgent lanes may use now (1: no throttle).
    pub(crate) fn share(&self) -> f64 {
        self.share
    }

    /// A job of the lane started after waiting `waited`; answers whether the share
    /// changed.
    pub(crate) fn observe(&mut self, waited: Duration, now: Instant) -> bool {
        if self.recent.len() == WINDOW {
            self.recent.pop_front();
        }
        self.recent.push_back(waited);
        if waited <= self.target {
            self.allowance = (self.allowance + 1.0 / ALLOWED_ONE_IN).min(ALLOWANCE);
            return false;
        }
        self.last_over = Some(now);
        if self.allowance >= 1.0 {
            self.allowance -= 1.0;
            return false;
        }
        if self.last_cut.is_some_and(|t| now - t < COOLDOWN) {
            return false;
        }
        self.last_cut = Some(now);
        let before = self.share;
        self.share = (self.share / 2.0).max(MIN_SHARE);
        self.share != before
    }

    /// Time passed: gives back `STEP` if no wait went over the target for `CALM`
    /// (an idle lane is calm). Answers whether the share changed.
    pub(crate) fn tick(&mut self, now: Instant) -> bool {
        if self.share >= 1.0 || self.last_over.is_some_and(|t| now - t < CALM) {
            return false;
        }
        self.share = (self.share + STEP).min(1.0);
        true
    }

    /// The 99th percentile of the last waits observed (nearest rank).
    pub(crate) fn p99(&self) -> Option<Duration> {
        if self.recent.is_empty() {
            return None;
        }
        let mut v: Vec<Duration> = self.recent.iter().copied().collect();
        v.sort_unstable();
        let rank = ((0.99 * v.len() as f64).ceil() as usize).clamp(1, v.len());
        Some(v[rank - 1])
    }
}

/// A lane's slots under a share: at least one, at most all of them.
pub(crate) fn throttled_slots(slots: u32, share: f64) -> u32 {
    if share >= 1.0 {
        return slots;
    }
    ((f64::from(slots) * share).ceil() as u32).clamp(1, slots.max(1))
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: Duration = Duration::from_millis(1);

    #[test]
    fn one_wait_over_the_target_in_a_hundred_is_allowed() {
        let t0 = Instant::now();
        let mut c = LatencyTarget::new(5 * MS);
        for round in 0..5 {
            assert!(
                !c.observe(6 * MS, t0),
                "round {round}: within the allowance"
            );
            for _ in 0..100 {
                assert!(!c.observe(4 * MS, t0));
            }
        }
        assert_eq!(c.share(), 1.0);
        assert!(!c.observe(6 * MS, t0));
        assert!(c.observe(6 * MS, t0), "two in a row: over the p99");
        assert_eq!(c.share(), 0.5);
    }

    #[test]
    fn waits_over_the_target_halve_the_share_once_per_cooldown() {
        let t0 = Instant::now();
        let mut c = LatencyTarget::new(5 * MS);
        assert!(!c.observe(4 * MS, t0), "under the target");
        assert!(!c.observe(6 * MS, t0), "the allowance");
        assert!(c.observe(6 * MS, t0));
        assert_eq!(c.share(), 0.5);
        assert!(!c.observe(9 * MS, t0 + 50 * MS), "within the cooldown");
        assert!(c.observe(9 * MS, t0 + 100 * MS));
        assert_eq!(c.share(), 0.25);
        for i in 0..20 {
            c.observe(9 * MS, t0 + (200 + 100 * i) * MS);
        }
        assert_eq!(c.share(), MIN_SHARE, "never below the floor");
    }

    #[test]
    fn calm_gives_capacity_back_step_by_step() {
        let t0 = Instant::now();
        let mut c = LatencyTarget::new(5 * MS);
        assert!(!c.tick(t0), "nothing to give back");
        c.observe(6 * MS, t0);
        c.observe(6 * MS, t0);
        c.observe(6 * MS, t0 + 100 * MS);
        assert_eq!(c.share(), 0.25);
        assert!(!c.tick(t0 + 200 * MS), "not calm yet");
        assert!(c.tick(t0 + 400 * MS));
        assert_eq!(c.share(), 0.25 + STEP);
        let mut now = t0 + 400 * MS;
        while c.tick(now) {
            now += 250 * MS;
        }
        assert_eq!(c.share(), 1.0);
    }

    #[test]
    fn p99_of_the_recent_window() {
        let t0 = Instant::now();
        let mut c = LatencyTarget::new(Duration::from_secs(1));
        assert_eq!(c.p99(), None);
        for i in 1..=300u64 {
            c.observe(Duration::from_micros(i), t0);
        }
        // The window keeps the last 256 (45..=300 µs): p99 is rank 254.
        assert_eq!(c.p99(), Some(Duration::from_micros(298)));
    }

    #[test]
    fn throttled_slots_keep_one_and_round_up() {
        assert_eq!(throttled_slots(1000, 1.0), 1000);
        assert_eq!(throttled_slots(1000, 0.5), 500);
        assert_eq!(throttled_slots(10, MIN_SHARE), 1);
        assert_eq!(throttled_slots(100, 0.333), 34);
        assert_eq!(throttled_slots(1, 0.01), 1);
    }
}

//! Lanes: named priority ranges with reserved concurrency.
//!
//! A lane owns `concurrency` slots that no other lane can use, so a flooded bulk lane
//! never delays an urgent job. [`Lane`] is what users configure. At start it splits into
//! its fixed part ([`LaneSpec`], shared by reference by everything that needs the range)
//! and its slot count, which from then on lives only in the lane's [`LaneAccount`]
//! inside the dispatch core (changed at run time by `SetConcurrency`).

mod account;
mod notify_gate;
mod target;

use std::ops::{Bound, RangeBounds};
use std::sync::Arc;
use std::time::Duration;

use crate::error::{Error, Result};
use crate::validate;

/// Highest priority value (least urgent) a job can have.
pub const MAX_PRIORITY: i16 = i16::MAX;

/// A named range of priorities with its own reserved worker slots.
///
/// ```
/// use pglane::Lane;
/// let urgent = Lane::new("urgent").priorities(0..=9).concurrency(8);
/// let bulk = Lane::new("bulk").priorities(10..).concurrency(4);
/// # let _ = (urgent, bulk);
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Lane {
    pub(crate) name: String,
    pub(crate) lo: i16,
    pub(crate) hi: i16,
    pub(crate) concurrency: u32,
    pub(crate) work_conserving: bool,
    pub(crate) prefetch: u32,
    pub(crate) target_wait: Option<Duration>,
    pub(crate) priority_error: Option<String>,
    pub(crate) age_after: Option<Duration>,
}

impl Lane {
    /// A lane taking every priority (`0..`) with 10 slots. Narrow it with
    /// [`priorities`](Self::priorities).
    pub fn new(name: impl Into<String>) -> Self {
        Lane {
            name: name.into(),
            lo: 0,
            hi: MAX_PRIORITY,
            concurrency: 10,
            work_conserving: true,
            prefetch: 0,
            target_wait: None,
            priority_error: None,
            age_after: None,
        }
    }

    /// The priorities this lane serves (lower is more urgent), e.g. `0..=9` or `100..`.
    /// Defaults to every priority. Priorities are `i16` everywhere (see
    /// [`JobOptions::priority`](crate::JobOptions::priority)).
    pub fn priorities(mut self, range: impl RangeBounds<i16>) -> Self {
        let lo = match range.start_bound() {
            Bound::Included(v) => i64::from(*v),
            Bound::Excluded(v) => i64::from(*v) + 1,
            Bound::Unbounded => 0,
        };
        let hi = match range.end_bound() {
            Bound::Included(v) => i64::from(*v),
            Bound::Excluded(v) => i64::from(*v) - 1,
            Bound::Unbounded => i64::from(MAX_PRIORITY),
        };
        match (validate::priority(lo), validate::priority(hi)) {
            (Ok(l), Ok(h)) if l <= h => {
                self.lo = l;
                self.hi = h;
                self.priority_error = None;
            }
            _ => {
                self.priority_error = Some(format!(
                    "lane `{}`: priority range {lo}..={hi} is empty or outside 0..=32767",
                    self.name
                ))
            }
        }
        self
    }

    /// Worker slots reserved for this lane: at most this many of its jobs run at once.
    /// Defaults to 10. Changeable at run time with
    /// [`SetConcurrency`](crate::SetConcurrency).
    pub fn concurrency(mut self, slots: u32) -> Self {
        self.concurrency = slots;
        self
    }

    /// Whether the lane, when it has free slots, also takes jobs *more urgent* than its
    /// range (never less urgent ones). Defaults to `true`.
    pub fn work_conserving(mut self, yes: bool) -> Self {
        self.work_conserving = yes;
        self
    }

    /// Opts the lane in to prefetch: it keeps up to `n` claimed, leased jobs of its
    /// own range ready beyond its slots, so a freed slot starts its next job without a
    /// database round trip. Defaults to 0 (no prefetch: a claim takes exactly the free
    /// slots, and the order within the lane is exact).
    ///
    /// The trade: a job enqueued while the lane holds prefetched jobs waits behind
    /// them even if it is more urgent *within the lane's range*. Prefetched jobs are
    /// never more urgent than the lane's range (a claim that borrows more urgent work
    /// takes only the free slots), so no other lane's work waits behind them. Their
    /// leases are renewed while they wait; they are handed back (attempt given back,
    /// place in line kept) when the lane is paused, its concurrency is changed, or the
    /// engine shuts down. `stats()` shows them (`LaneStats::prefetched`).
    pub fn prefetch(mut self, n: u32) -> Self {
        self.prefetch = n;
        self
    }

    /// A latency target: the engine keeps this lane's pickup wait under `d` by limiting
    /// how many of their slots less urgent lanes of this engine may fill while the
    /// target is at risk, and gives the slots back when it is not. Defaults to none.
    ///
    /// The wait controlled is the round trip of the lane's claims that bring jobs back
    /// (an enqueue wakes the lane at once; the claim then competes with the bulk lanes
    /// for the database). Not counted: the enqueue's own commit, and waits for the
    /// lane's own slots (give it more slots for those).
    ///
    /// `d` is a 99th percentile: one wait in a hundred may exceed it. The control is
    /// additive increase, multiplicative decrease: a wait over `d` beyond that allowance
    /// halves the share of their slots that less urgent lanes may use (at most once per
    /// 100 ms, down to 1/64 and at least one slot), and every 250 ms with no wait over
    /// `d` gives back 1/16. While the share is below 1, less urgent lanes also hold
    /// their next claim while this lane's claim is in flight. `stats()` shows the
    /// target, the observed p99 and each lane's current share (`LaneStats::throttle`).
    /// Only this engine's lanes are limited: other processes on the database are not.
    pub fn target_wait(mut self, d: Duration) -> Self {
        self.target_wait = Some(d);
        self
    }

    /// Aging: a job of this lane that has waited longer than `d` past its `run_at` is
    /// claimed ahead of younger jobs of the lane, even more urgent ones, so a steady
    /// stream of urgent jobs cannot starve the lane's less urgent ones forever. Defaults
    /// to off.
    ///
    /// How: every poll interval the engine raises such a job's priority to the lane's
    /// most urgent one (the priority it was enqueued with is kept in the job's
    /// `base_priority` column), so the claim stays the same index scan in
    /// `priority, run_at, id` order, and the aged job, older than every job it now ties
    /// with, comes first. The new priority is inside the lane's own range: aging never
    /// moves a job into another lane's reserved slots. A retried aged job keeps its
    /// raised priority.
    pub fn age_after(mut self, d: Duration) -> Self {
        self.age_after = Some(d);
        self
    }

    /// The lane's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The lane's priority range, inclusive.
    pub fn range(&self) -> (i16, i16) {
        (self.lo, self.hi)
    }

    /// Splits the lane into its fixed part and its initial slot count.
    pub(crate) fn split(self) -> (Arc<LaneSpec>, u32) {
        let spec = LaneSpec {
            name: Arc::from(self.name.as_str()),
            lo: self.lo,
            hi: self.hi,
            work_conserving: self.work_conserving,
            prefetch: self.prefetch,
            target_wait: self.target_wait,
            age_after: self.age_after,
        };
        (Arc::new(spec), self.concurrency)
    }
}

/// A lane's fixed configuration: name, priority range and borrowing rule. Held once, in an
/// `Arc` shared by the dispatch core, the lane's claimer, the notify gate and stats; the
/// lane's slot count is not here (it changes at run time and lives in its account).
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct LaneSpec {
    pub(crate) name: Arc<str>,
    /// Most urgent priority of the lane's own range.
    pub(crate) lo: i16,
    /// Least urgent priority the lane serves: a claim never takes anything above it.
    pub(crate) hi: i16,
    pub(crate) work_conserving: bool,
    /// Jobs held ready beyond the slots (0: no prefetch).
    pub(crate) prefetch: u32,
    /// The pickup wait this lane must hold, if any.
    pub(crate) target_wait: Option<Duration>,
    /// Aging (see [`Lane::age_after`]); `None`: off.
    pub(crate) age_after: Option<Duration>,
}

impl LaneSpec {
    /// Whether a job of priority `p` may be claimed by this lane: its own range, and
    /// anything more urgent when work-conserving.
    pub(crate) fn accepts(&self, p: i16) -> bool {
        let floor = if self.work_conserving { 0 } else { self.lo };
        p >= floor && p <= self.hi
    }

    /// Whether `p` is in the lane's own range.
    pub(crate) fn owns(&self, p: i16) -> bool {
        p >= self.lo && p <= self.hi
    }
}

pub(crate) use account::LaneAccount;

pub(crate) use notify_gate::NotifyGate;
pub(crate) use target::{throttled_slots, LatencyTarget};

/// Validates a set of lanes: valid unique names, non-empty ranges, no overlap, and no
/// gap unless `allow_gaps` (a job in a gap would only run when a less urgent lane
/// borrows it).
pub(crate) fn validate_lanes(lanes: &[Lane], allow_gaps: bool) -> Result<()> {
    if lanes.is_empty() {
        return Err(Error::InvalidConfig(
            "no lanes: add at least one `Lane`".into(),
        ));
    }
    for lane in lanes {
        validate::identifier("lane", &lane.name)
            .map_err(|e| Error::InvalidConfig(e.to_string()))?;
        if let Some(msg) = &lane.priority_error {
            return Err(Error::InvalidConfig(msg.clone()));
        }
        if lane.target_wait.is_some_and(|d| d.is_zero()) {
            return Err(Error::InvalidConfig(format!(
                "lane `{}`: target_wait must be more than zero",
                lane.name
            )));
        }
        if lane
            .age_after
            .is_some_and(|d| d.is_zero() || d > Duration::from_secs(86_400 * 365))
        {
            return Err(Error::InvalidConfig(format!(
                "lane `{}`: age_after must be more than zero and at most a year",
                lane.name
            )));
        }
        if lane.concurrency == 0 {
            return Err(Error::InvalidConfig(format!(
                "lane `{}`: concurrency must be at least 1 (pause a lane to stop it)",
                lane.name
            )));
        }
    }
    let mut sorted: Vec<&Lane> = lanes.iter().collect();
    sorted.sort_by_key(|l| l.lo);
    for pair in sorted.windows(2) {
        let (a, b) = (pair[0], pair[1]);
        if a.name == b.name {
            return Err(Error::InvalidConfig(format!(
                "two lanes are named `{}`",
                a.name
            )));
        }
        if b.lo <= a.hi {
            return Err(Error::InvalidConfig(format!(
                "lanes `{}` ({}..={}) and `{}` ({}..={}) overlap",
                a.name, a.lo, a.hi, b.name, b.lo, b.hi
            )));
        }
        if !allow_gaps && b.lo > a.hi + 1 {
            return Err(Error::InvalidConfig(format!(
                "priorities {}..={} belong to no lane (between `{}` and `{}`); \
                 cover them or call `allow_priority_gaps()`",
                a.hi + 1,
                b.lo - 1,
                a.name,
                b.name
            )));
        }
    }
    if !allow_gaps {
        let first = sorted[0];
        let last = sorted[sorted.len() - 1];
        if first.lo != 0 || last.hi != MAX_PRIORITY {
            return Err(Error::InvalidConfig(format!(
                "lanes cover {}..={}, not every priority (0..=32767); \
                 widen the first or last lane or call `allow_priority_gaps()`",
                first.lo, last.hi
            )));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges_parse() {
        assert_eq!(Lane::new("a").priorities(0..=9).range(), (0, 9));
        assert_eq!(Lane::new("a").priorities(10..100).range(), (10, 99));
        assert_eq!(
            Lane::new("a").priorities(100..).range(),
            (100, MAX_PRIORITY)
        );
        assert!(Lane::new("a").priorities(-1..5).priority_error.is_some());
        assert!(Lane::new("a").priorities(5..5).priority_error.is_some());
        assert!(Lane::new("a").priorities(..-1).priority_error.is_some());
    }

    #[test]
    fn accepts_more_urgent_only_when_work_conserving() {
        let (l, slots) = Lane::new("n").priorities(10..=99).concurrency(3).split();
        assert_eq!(slots, 3);
        assert!(l.accepts(0) && l.accepts(50) && !l.accepts(100));
        assert!(!l.owns(0) && l.owns(10) && l.owns(99));
        let (strict, _) = Lane::new("n")
            .priorities(10..=99)
            .work_conserving(false)
            .split();
        assert!(!strict.accepts(0) && strict.accepts(10) && !strict.accepts(100));
    }

    #[test]
    fn lane_sets_are_validated() {
        let ok = [
            Lane::new("u").priorities(0..=9),
            Lane::new("b").priorities(10..),
        ];
        assert!(validate_lanes(&ok, false).is_ok());
        let overlap = [
            Lane::new("u").priorities(0..=10),
            Lane::new("b").priorities(10..),
        ];
        assert!(validate_lanes(&overlap, false)
            .unwrap_err()
            .to_string()
            .contains("overlap"));
        let gap = [
            Lane::new("u").priorities(0..=9),
            Lane::new("b").priorities(20..),
        ];
        assert!(validate_lanes(&gap, false)
            .unwrap_err()
            .to_string()
            .contains("10..=19"));
        assert!(validate_lanes(&gap, true).is_ok());
        let short = [Lane::new("u").priorities(0..=9)];
        assert!(validate_lanes(&short, false).is_err());
        assert!(validate_lanes(&[], false).is_err());
        assert!(validate_lanes(&[Lane::new("Bad")], false).is_err());
        assert!(validate_lanes(&[Lane::new("z").concurrency(0)], false).is_err());
        let zero = [Lane::new("z").target_wait(std::time::Duration::ZERO)];
        assert!(validate_lanes(&zero, false)
            .unwrap_err()
            .to_string()
            .contains("target_wait"));
        assert!(validate_lanes(&[Lane::new("z").age_after(Duration::ZERO)], false).is_err());
        assert!(
            validate_lanes(&[Lane::new("z").age_after(Duration::from_secs(60))], false).is_ok()
        );
        let dup = [
            Lane::new("a").priorities(0..=9),
            Lane::new("a").priorities(10..),
        ];
        assert!(validate_lanes(&dup, false).is_err());
    }
}

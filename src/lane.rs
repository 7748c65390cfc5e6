//! Lanes: named priority ranges with reserved concurrency, and their slot accounting.
//!
//! A lane owns `concurrency` slots that no other lane can use, so a flooded bulk lane
//! never delays an urgent job. The accounting is a plain struct ([`LaneAccount`]) driven by
//! the supervisor actor, so every rule here is unit tested without a database.

use std::ops::{Bound, RangeBounds};

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
    pub(crate) priority_error: Option<String>,
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
            priority_error: None,
        }
    }

    /// The priorities this lane serves (lower is more urgent), e.g. `0..=9` or `100..`.
    /// Defaults to every priority.
    pub fn priorities(mut self, range: impl RangeBounds<i32>) -> Self {
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

    /// The lane's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The lane's priority range, inclusive.
    pub fn range(&self) -> (i16, i16) {
        (self.lo, self.hi)
    }

    /// The lowest priority value the lane's claim may take: 0 when work-conserving.
    pub(crate) fn claim_floor(&self) -> i16 {
        if self.work_conserving {
            0
        } else {
            self.lo
        }
    }

    /// Whether a job of priority `p` may be claimed by this lane.
    pub(crate) fn accepts(&self, p: i16) -> bool {
        p >= self.claim_floor() && p <= self.hi
    }
}

/// The most urgent priority lane `i` may claim right now. A work-conserving lane borrows
/// more urgent work only where nobody else would take it: from lanes that are full or
/// paused (`busy`), and from priorities no lane covers. While a more urgent lane has free
/// slots its jobs are left to it, so an urgent job is never swept into a large, slow
/// claim of a bulk lane when its own lane could start it at once.
pub(crate) fn borrow_floor(lanes: &[Lane], busy: impl Fn(usize) -> bool, i: usize) -> i16 {
    let lane = &lanes[i];
    if !lane.work_conserving {
        return lane.lo;
    }
    let mut floor = lane.lo;
    while floor > 0 {
        match lanes.iter().position(|l| l.hi == floor - 1) {
            Some(j) if busy(j) => floor = lanes[j].lo,
            Some(_) => break,
            // A gap below: nobody owns it, so take it, down to the next lane's range.
            None => {
                floor = lanes
                    .iter()
                    .map(|l| l.hi)
                    .filter(|hi| *hi < floor)
                    .max()
                    .map_or(0, |hi| hi + 1)
            }
        }
    }
    floor
}

/// Which lanes of this engine are known to have a backlog: their last claim came back
/// full and they have no free slot, so they claim again the moment a slot frees. Written
/// by the supervisor, read by engine handles to skip the NOTIFY of an enqueue that could
/// only wake lanes already busy with the same work: NOTIFY takes a cluster-wide lock at
/// commit and costs ~20% of a single-job enqueue transaction.
#[derive(Debug)]
pub(crate) struct Backlog {
    /// `skip_notify_when_backlogged`: when off, every enqueue notifies.
    enabled: bool,
    /// The queue this engine claims from: its lanes say nothing about other queues.
    queue: String,
    ranges: Vec<(i16, i16)>,
    flags: Vec<std::sync::atomic::AtomicBool>,
}

impl Backlog {
    pub(crate) fn new(lanes: &[Lane], queue: &str, enabled: bool) -> Self {
        Backlog {
            enabled,
            queue: queue.to_string(),
            ranges: lanes.iter().map(|l| (l.lo, l.hi)).collect(),
            flags: lanes
                .iter()
                .map(|_| std::sync::atomic::AtomicBool::new(false))
                .collect(),
        }
    }

    pub(crate) fn set(&self, lane: usize, backlogged: bool) {
        self.flags[lane].store(backlogged, std::sync::atomic::Ordering::Relaxed);
    }

    /// Whether workers need a NOTIFY for these jobs: yes unless every job due now is of
    /// this engine's queue and owned by a lane here that is working through a backlog.
    pub(crate) fn needs_notify_for(&self, jobs: &[crate::enqueue::NewJob]) -> bool {
        !self.enabled
            || jobs
                .iter()
                .filter(|j| j.run_at.is_none() && j.delay_s.is_none())
                .any(|j| j.queue != self.queue || self.needs_notify(j.priority))
    }

    /// Whether workers need a NOTIFY for a job of priority `p` in this engine's queue:
    /// not when the lane that owns `p` here is already working through a backlog.
    pub(crate) fn needs_notify(&self, p: i16) -> bool {
        match self.ranges.iter().position(|(lo, hi)| p >= *lo && p <= *hi) {
            Some(i) => !self.flags[i].load(std::sync::atomic::Ordering::Relaxed),
            None => true,
        }
    }
}

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

/// Slot accounting for one lane. The supervisor calls these methods; they decide
/// when to claim and how many jobs to ask for.
///
/// Invariant: `running + reserved <= slots` except after the concurrency is lowered at
/// run time, when running jobs finish without being replaced until the lane is back
/// under its new limit.
#[derive(Debug, Clone)]
pub(crate) struct LaneAccount {
    slots: u32,
    running: u32,
    /// Slots held by a claim in flight.
    reserved: u32,
    paused: bool,
    /// Work may be waiting (a hint, a poll tick, or a full last claim).
    wanted: bool,
    draining: bool,
}

impl LaneAccount {
    pub(crate) fn new(slots: u32) -> Self {
        LaneAccount {
            slots,
            running: 0,
            reserved: 0,
            paused: false,
            wanted: true,
            draining: false,
        }
    }

    /// Slots neither running nor reserved.
    pub(crate) fn free(&self) -> u32 {
        self.slots.saturating_sub(self.running + self.reserved)
    }

    pub(crate) fn running(&self) -> u32 {
        self.running
    }

    pub(crate) fn slots(&self) -> u32 {
        self.slots
    }

    pub(crate) fn paused(&self) -> bool {
        self.paused
    }

    /// Whether the lane cannot take more work now (paused, draining or full), so a less
    /// urgent lane may borrow its jobs.
    pub(crate) fn busy(&self) -> bool {
        self.paused || self.draining || self.free() == 0
    }

    pub(crate) fn claim_in_flight(&self) -> bool {
        self.reserved > 0
    }

    /// Notes that work may be waiting for this lane.
    pub(crate) fn want(&mut self) {
        self.wanted = true;
    }

    /// Starts a claim if the lane should claim now, reserving the free slots, and
    /// returns how many jobs to ask for. At most one claim per lane is in flight; a
    /// hint that arrives meanwhile is kept in `wanted` and served when it returns.
    pub(crate) fn begin_claim(&mut self) -> Option<u32> {
        if self.paused || self.draining || !self.wanted || self.reserved > 0 {
            return None;
        }
        let free = self.free();
        if free == 0 {
            return None;
        }
        self.wanted = false;
        self.reserved = free;
        Some(free)
    }

    /// Ends a claim that asked for `asked` jobs and got `got`; their slots become
    /// running. A full batch means more may be waiting.
    pub(crate) fn end_claim(&mut self, asked: u32, got: u32) {
        debug_assert!(got <= asked);
        self.reserved = 0;
        self.running += got;
        if got == asked {
            self.wanted = true;
        }
    }

    /// Ends a claim that failed: nothing was taken; try again on the next tick.
    pub(crate) fn fail_claim(&mut self) {
        self.reserved = 0;
    }

    /// A job of this lane finished; its slot is free again.
    pub(crate) fn finish(&mut self) {
        self.running = self.running.saturating_sub(1);
    }

    pub(crate) fn pause(&mut self) {
        self.paused = true;
    }

    pub(crate) fn resume(&mut self) {
        self.paused = false;
        self.wanted = true;
    }

    /// Stops claiming for good (shutdown).
    pub(crate) fn drain(&mut self) {
        self.draining = true;
    }

    pub(crate) fn set_slots(&mut self, slots: u32) {
        if slots > self.slots {
            self.wanted = true;
        }
        self.slots = slots;
    }
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
        assert!(Lane::new("a").priorities(0..40000).priority_error.is_some());
    }

    #[test]
    fn accepts_more_urgent_only_when_work_conserving() {
        let l = Lane::new("n").priorities(10..=99);
        assert!(l.accepts(0) && l.accepts(50) && !l.accepts(100));
        let strict = l.work_conserving(false);
        assert!(!strict.accepts(0) && strict.accepts(10) && !strict.accepts(100));
    }

    #[test]
    fn borrowing_reaches_only_past_busy_lanes_and_gaps() {
        let lanes = [
            Lane::new("u").priorities(0..=9),
            Lane::new("n").priorities(10..=99),
            Lane::new("b").priorities(200..),
        ];
        let free = [false, false, false];
        assert_eq!(borrow_floor(&lanes, |j| free[j], 0), 0);
        assert_eq!(
            borrow_floor(&lanes, |j| free[j], 1),
            10,
            "urgent lane has room: leave its jobs"
        );
        assert_eq!(
            borrow_floor(&lanes, |j| free[j], 2),
            100,
            "the 100..=199 gap is nobody's"
        );
        assert_eq!(
            borrow_floor(&lanes, |j| [true, false, false][j], 1),
            0,
            "urgent lane full: help"
        );
        assert_eq!(
            borrow_floor(&lanes, |j| [true, false, false][j], 2),
            100,
            "normal lane has room"
        );
        assert_eq!(borrow_floor(&lanes, |j| [false, true, false][j], 2), 10);
        assert_eq!(borrow_floor(&lanes, |j| [true, true, false][j], 2), 0);
        let strict = [
            Lane::new("u").priorities(0..=9),
            Lane::new("b").priorities(10..).work_conserving(false),
        ];
        assert_eq!(borrow_floor(&strict, |j| [true, false][j], 1), 10);
        let top_gap = [Lane::new("b").priorities(50..)];
        assert_eq!(borrow_floor(&top_gap, |j| [false][j], 0), 0);
    }

    #[test]
    fn notify_is_skipped_only_for_a_backlogged_owner_lane() {
        let lanes = [
            Lane::new("u").priorities(0..=9),
            Lane::new("b").priorities(10..),
        ];
        let b = Backlog::new(&lanes, "default", true);
        assert!(b.needs_notify(0) && b.needs_notify(500));
        b.set(1, true);
        assert!(b.needs_notify(5), "the urgent lane is idle: wake it");
        assert!(!b.needs_notify(500), "the bulk lane claims again anyway");
        b.set(1, false);
        assert!(b.needs_notify(500));
        let gap = Backlog::new(&[Lane::new("b").priorities(10..)], "default", true);
        gap.set(0, true);
        assert!(
            gap.needs_notify(3),
            "no lane owns it here: other processes might"
        );
        let job = |queue: &str, priority: i16| crate::enqueue::NewJob {
            kind: "k".into(),
            queue: queue.into(),
            priority,
            args: "{}".into(),
            max_attempts: 1,
            run_at: None,
            delay_s: None,
            timeout_ms: None,
            unique_key: None,
        };
        assert!(!gap.needs_notify_for(&[job("default", 50)]));
        assert!(
            gap.needs_notify_for(&[job("mail", 50)]),
            "another queue's workers"
        );
        assert!(gap.needs_notify_for(&[job("default", 50), job("default", 3)]));
        let later = crate::enqueue::NewJob {
            delay_s: Some(5.0),
            ..job("mail", 1)
        };
        assert!(
            !gap.needs_notify_for(&[later]),
            "scheduled jobs never notify"
        );
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
        let dup = [
            Lane::new("a").priorities(0..=9),
            Lane::new("a").priorities(10..),
        ];
        assert!(validate_lanes(&dup, false).is_err());
    }

    #[test]
    fn claims_exactly_the_free_slots_one_at_a_time() {
        let mut a = LaneAccount::new(4);
        assert_eq!(a.begin_claim(), Some(4));
        // A second claim waits for the first, even when hinted.
        a.want();
        assert_eq!(a.begin_claim(), None);
        a.end_claim(4, 3);
        assert_eq!(a.running(), 3);
        // The hint that arrived during the claim is served now.
        assert_eq!(a.begin_claim(), Some(1));
        a.end_claim(1, 0);
        assert_eq!(a.begin_claim(), None, "drained and unhinted: no claim");
        a.finish();
        assert_eq!(
            a.begin_claim(),
            None,
            "a freed slot alone does not claim when drained"
        );
        a.want();
        assert_eq!(a.begin_claim(), Some(2));
    }

    #[test]
    fn full_batch_means_more_may_wait() {
        let mut a = LaneAccount::new(2);
        assert_eq!(a.begin_claim(), Some(2));
        a.end_claim(2, 2);
        assert_eq!(a.begin_claim(), None, "no free slot");
        a.finish();
        assert_eq!(a.begin_claim(), Some(1));
    }

    #[test]
    fn pause_resume_and_resize() {
        let mut a = LaneAccount::new(2);
        a.pause();
        assert_eq!(a.begin_claim(), None);
        a.resume();
        assert_eq!(a.begin_claim(), Some(2));
        a.end_claim(2, 2);
        a.set_slots(1);
        a.finish();
        assert_eq!(a.free(), 0, "still at the new limit");
        a.set_slots(3);
        assert_eq!(a.begin_claim(), Some(2));
        a.fail_claim();
        a.drain();
        a.want();
        assert_eq!(a.begin_claim(), None);
    }
}

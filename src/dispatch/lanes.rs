//! One lane's state in the core, and the work-conserving borrowing rule.

use std::sync::Arc;
use std::time::Duration;

use super::WaiterId;
use crate::lane::{LaneAccount, LaneSpec, LatencyTarget};

/// A lane's state: its fixed config (shared, held once), its slot accounting, what it has
/// started, and the pauses waiting for its claim in flight.
#[derive(Debug)]
pub(crate) struct LaneState {
    pub(crate) spec: Arc<LaneSpec>,
    pub(crate) account: LaneAccount,
    /// Token of the claim in flight, if any.
    pub(crate) in_flight: Option<i64>,
    /// Pauses answered when the claim in flight returns.
    pub(crate) pause_waiters: Vec<WaiterId>,
    /// Runs of this lane stuck on their thread (they keep their slots).
    pub(crate) stuck: u32,
    /// Jobs started, the sum of their waits (due to claimed) and the longest wait.
    pub(crate) started: u64,
    pub(crate) total_wait: Duration,
    pub(crate) max_wait: Duration,
    /// Slots came free during the current core call: claim again at its end.
    pub(crate) refill: bool,
    /// The controller of its latency target, if it has one.
    pub(crate) target: Option<LatencyTarget>,
    /// The share of its slots it may fill now (below 1 while a more urgent lane's
    /// target throttles it).
    pub(crate) share: f64,
}

impl LaneState {
    pub(crate) fn new(spec: Arc<LaneSpec>, slots: u32) -> Self {
        let account = LaneAccount::with_prefetch(slots, spec.prefetch);
        let target = spec.target_wait.map(LatencyTarget::new);
        LaneState {
            target,
            share: 1.0,
            spec,
            account,
            in_flight: None,
            pause_waiters: Vec::new(),
            stuck: 0,
            started: 0,
            total_wait: Duration::ZERO,
            max_wait: Duration::ZERO,
            refill: false,
        }
    }

    pub(crate) fn record_start(&mut self, waited: Duration) {
        self.started += 1;
        self.total_wait += waited;
        self.max_wait = self.max_wait.max(waited);
    }
}

/// The most urgent priority lane `i` may claim right now. A work-conserving lane borrows
/// more urgent work only where nobody else would take it: from lanes that are full or
/// paused (busy), and from priorities no lane covers. While a more urgent lane has free
/// slots its jobs are left to it, so an urgent job is never swept into a large, slow
/// claim of a bulk lane when its own lane could start it at once.
pub(crate) fn borrow_floor(lanes: &[LaneState], i: usize) -> i16 {
    let lane = &lanes[i].spec;
    if !lane.work_conserving {
        return lane.lo;
    }
    let mut floor = lane.lo;
    while floor > 0 {
        match lanes.iter().find(|l| l.spec.hi == floor - 1) {
            Some(l) if l.account.busy() => floor = l.spec.lo,
            Some(_) => break,
            // A gap below: nobody owns it, so take it, down to the next lane's range.
            None => {
                floor = lanes
                    .iter()
                    .map(|l| l.spec.hi)
                    .filter(|hi| *hi < floor)
                    .max()
                    .map_or(0, |hi| hi + 1)
            }
        }
    }
    floor
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::lane::Lane;

    /// Lanes whose `busy` ones are full (one slot, one running).
    fn lanes(defs: Vec<Lane>, busy: &[bool]) -> Vec<LaneState> {
        defs.into_iter()
            .zip(busy)
            .map(|(l, busy)| {
                let (spec, _) = l.split();
                let mut s = LaneState::new(spec, 1);
                if *busy {
                    let asked = s.account.begin_claim().unwrap_or(0);
                    s.account.end_claim(asked, asked);
                }
                s
            })
            .collect()
    }

    #[test]
    fn borrowing_reaches_only_past_busy_lanes_and_gaps() {
        let three = || {
            vec![
                Lane::new("u").priorities(0..=9),
                Lane::new("n").priorities(10..=99),
                Lane::new("b").priorities(200..),
            ]
        };
        let free = lanes(three(), &[false, false, false]);
        assert_eq!(borrow_floor(&free, 0), 0);
        assert_eq!(
            borrow_floor(&free, 1),
            10,
            "urgent lane has room: leave its jobs"
        );
        assert_eq!(borrow_floor(&free, 2), 100, "the 100..=199 gap is nobody's");
        let urgent_full = lanes(three(), &[true, false, false]);
        assert_eq!(borrow_floor(&urgent_full, 1), 0, "urgent lane full: help");
        assert_eq!(borrow_floor(&urgent_full, 2), 100, "normal lane has room");
        assert_eq!(borrow_floor(&lanes(three(), &[false, true, false]), 2), 10);
        assert_eq!(borrow_floor(&lanes(three(), &[true, true, false]), 2), 0);
        let mut paused = lanes(three(), &[false, false, false]);
        paused[1].account.pause();
        assert_eq!(
            borrow_floor(&paused, 2),
            10,
            "a paused lane's jobs are fair game"
        );
        let strict = lanes(
            vec![
                Lane::new("u").priorities(0..=9),
                Lane::new("b").priorities(10..).work_conserving(false),
            ],
            &[true, false],
        );
        assert_eq!(borrow_floor(&strict, 1), 10);
        let top_gap = lanes(vec![Lane::new("b").priorities(50..)], &[false]);
        assert_eq!(borrow_floor(&top_gap, 0), 0);
    }
}

//! Latency targets: lanes with a `target_wait` throttle less urgent lanes of this
//! engine while their target is at risk (the controller is `lane::LatencyTarget`).
//!
//! A lane is throttled by every lane with a target whose range is more urgent than
//! its own; it may fill the smallest share any of them allows. While throttled, it
//! also holds its next claim as long as such a lane has a claim in flight, so that
//! claim does not queue for the database's CPU behind a bulk claim.

use std::time::{Duration, Instant};

use super::{Claimed, Dispatcher, LaneId};
use crate::lane::throttled_slots;

impl<J: Claimed, H> Dispatcher<J, H> {
    /// Lane `i`'s claim brought jobs back after `took` (its round trip, measured by the
    /// actor): feed its target, if any.
    ///
    /// The claim's round trip is the part of an urgent job's pickup wait that the
    /// throttle acts on: the job is claimed as soon as its enqueue wakes the lane, and
    /// the claim then waits for the database's CPU behind the bulk lanes' statements.
    /// The wait counted from the job's `run_at` would also include its enqueue's own
    /// commit (run_at is the enqueue statement's start), which measured 30-120 ms at the
    /// p99 on a loaded machine while the claims took under 10: a target on that would
    /// throttle for time no lane of this engine can give back.
    pub(crate) fn claim_took(&mut self, i: LaneId, took: Duration, now: Instant) {
        let changed = match self.lanes[i].target.as_mut() {
            Some(t) => t.observe(took, now),
            None => false,
        };
        if changed {
            self.apply_shares();
        }
    }

    /// Time passed: targets give capacity back when calm.
    pub(super) fn tick_targets(&mut self, now: Instant) {
        let mut changed = false;
        for lane in &mut self.lanes {
            if let Some(t) = lane.target.as_mut() {
                changed |= t.tick(now);
            }
        }
        if changed {
            self.apply_shares();
        }
    }

    /// Sets every lane's share and slot limit from the targets of more urgent lanes;
    /// a lane given slots back claims again.
    pub(super) fn apply_shares(&mut self) {
        for j in 0..self.lanes.len() {
            let lo = self.lanes[j].spec.lo;
            let share = self
                .lanes
                .iter()
                .filter(|l| l.spec.hi < lo)
                .filter_map(|l| l.target.as_ref().map(|t| t.share()))
                .fold(1.0, f64::min);
            let lane = &mut self.lanes[j];
            lane.share = share;
            let before = lane.account.limit();
            let limit = throttled_slots(lane.account.slots(), share);
            lane.account.set_limit(limit);
            if limit > before {
                lane.refill = true;
            }
        }
    }

    /// Whether lane `i` holds its claim: it is throttled and a more urgent lane with a
    /// target has a claim in flight.
    pub(super) fn held_for_target(&self, i: LaneId) -> bool {
        let lane = &self.lanes[i];
        lane.share < 1.0
            && self
                .lanes
                .iter()
                .any(|l| l.target.is_some() && l.spec.hi < lane.spec.lo && l.in_flight.is_some())
    }
}

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
    /// A job of lane `i` started after waiting `waited`: feed its target, if any.
    pub(super) fn observe_wait(&mut self, i: LaneId, waited: Duration, now: Instant) {
        let changed = match self.lanes[i].target.as_mut() {
            Some(t) => t.observe(waited, now),
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

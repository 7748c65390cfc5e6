//! Prefetch: a lane that opted in holds claimed, leased jobs of its own range ready, and
//! starts them as its slots free, without a database round trip.
//!
//! Invariants: a held job is never more urgent than its lane's range (a claim that
//! borrows asks only for the open slots, see `claims`); a held job's lease is renewed
//! with the running ones; held jobs are handed back (attempt given back, place in line
//! kept: `Action::Release`) when the lane is paused or resized and when shutdown
//! begins; a held job whose lease is gone is dropped without an outcome.

use std::time::Instant;

use super::{Claimed, Dispatcher, Effects, LaneId, Launcher, Ready, RunKey};
use crate::outcome::Action;

impl<J: Claimed, H> Dispatcher<J, H> {
    /// Holds `job` (claimed by lane `i` under `key`) ready for a slot.
    pub(super) fn hold_ready(&mut self, i: LaneId, key: RunKey, job: J) {
        self.lanes[i].account.hold();
        self.ready[i].push_back(Ready { key, job });
    }

    /// Starts held jobs in every lane's open slots.
    pub(super) fn start_ready<L>(&mut self, launcher: &mut L, now: Instant, fx: &mut Effects<H>)
    where
        L: Launcher<J, Handle = H>,
    {
        if self.shutdown.is_some() || self.threads.usable() == 0 {
            return;
        }
        for i in 0..self.lanes.len() {
            while self.lanes[i].account.open_slots() > 0 && !self.lanes[i].account.paused() {
                let Some(Ready { key, job }) = self.ready[i].pop_front() else {
                    break;
                };
                self.lanes[i].account.unhold();
                self.start(i, key, job, launcher, now, fx);
            }
        }
    }

    /// Hands back every job lane `i` holds ready.
    pub(super) fn hand_back_ready(&mut self, i: LaneId, fx: &mut Effects<H>) {
        for Ready { key, .. } in self.ready[i].drain(..) {
            self.lanes[i].account.drop_held();
            self.lanes[i].refill = true;
            fx.outcomes.push((key, Action::Release));
        }
    }

    /// Held jobs whose leases are to be renewed with the running ones.
    pub(super) fn ready_keys(&self) -> impl Iterator<Item = RunKey> + '_ {
        self.ready.iter().flatten().map(|r| r.key)
    }

    /// Drops a held job whose lease is gone (its outcome would be fenced off); answers
    /// whether `key` was held.
    pub(super) fn drop_ready(&mut self, key: RunKey) -> bool {
        for (i, ready) in self.ready.iter_mut().enumerate() {
            if let Some(at) = ready.iter().position(|r| r.key == key) {
                ready.remove(at);
                self.lanes[i].account.drop_held();
                self.lanes[i].refill = true;
                return true;
            }
        }
        false
    }
}

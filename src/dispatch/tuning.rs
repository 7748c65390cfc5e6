//! Tuning lanes at run time: pause, resume, concurrency.

use super::{Claimed, Dispatcher, Effects, LaneId, WaiterId};

impl<J: Claimed, H> Dispatcher<J, H> {
    /// Pauses lane `i`: it claims nothing until resumed; running jobs finish. Returns a
    /// waiter to answer once the claim in flight, if any, has returned (its jobs are then
    /// handed back, see `claim_returned`): from that answer on, no job enqueued can start
    /// in this lane.
    /// Jobs it holds ready (prefetched) are handed back at once.
    pub(crate) fn pause(&mut self, i: LaneId, fx: &mut Effects<H>) -> Option<WaiterId> {
        self.lanes[i].account.pause();
        self.hand_back_ready(i, fx);
        self.lanes[i].refill = false;
        // A paused lane will not claim: enqueues for it must wake other processes.
        self.gate.set(i, false);
        self.lanes[i].in_flight?;
        let waiter = self.new_waiter();
        self.lanes[i].pause_waiters.push(waiter);
        Some(waiter)
    }

    /// Resumes lane `i`, claiming at once.
    pub(crate) fn resume(&mut self, i: LaneId, fx: &mut Effects<H>) {
        self.lanes[i].account.resume();
        self.dispatch(i, fx);
    }

    /// Sets lane `i`'s slots (at least 1). Raising them claims at once; lowering them
    /// below the running count lets running jobs finish and replaces them only once the
    /// lane is under its new limit.
    /// Lowering them also hands back the jobs the lane holds ready (prefetched): the
    /// lane refills at its new size.
    pub(crate) fn set_concurrency(&mut self, i: LaneId, slots: u32, fx: &mut Effects<H>) {
        if slots < self.lanes[i].account.slots() {
            self.hand_back_ready(i, fx);
        }
        self.lanes[i].account.set_slots(slots);
        self.apply_shares();
        self.dispatch(i, fx);
    }
}

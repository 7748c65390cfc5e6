//! Slot accounting for one lane: when to claim and how many jobs to ask for.

/// Slot accounting for one lane. The dispatch core calls these methods; they decide
/// when to claim and how many jobs to ask for. A slot stays taken from the claim that
/// fills it until the run's future is gone (a run stuck on its thread keeps its slot).
///
/// Invariant: `running + held + reserved <= slots + prefetch` and `running <= slots`,
/// except after the concurrency is lowered at run time, when running jobs finish without
/// being replaced until the lane is back under its new limit.
///
/// A lane that opts in to prefetch (`prefetch > 0`) also keeps up to `prefetch` claimed
/// jobs ready (`held`), so a freed slot starts its next job without a round trip. It
/// claims again only when its slots are free or its held jobs are down to half of
/// `prefetch` (a low-water mark), so it refills in batches, not one job per finished run.
#[derive(Debug, Clone)]
pub(crate) struct LaneAccount {
    slots: u32,
    running: u32,
    /// Prefetched jobs claimed and leased, waiting for a slot.
    held: u32,
    /// How many jobs the lane may hold ready (0: no prefetch).
    prefetch: u32,
    /// Slots it may fill now: `slots`, or fewer while a more urgent lane's latency
    /// target throttles it.
    limit: u32,
    /// Slots held by a claim in flight.
    reserved: u32,
    paused: bool,
    /// Work may be waiting (a hint, a poll tick, or a full last claim).
    wanted: bool,
    draining: bool,
}

impl LaneAccount {
    /// An account for `slots` slots without prefetch.
    #[cfg(any(test, feature = "bench"))]
    pub(crate) fn new(slots: u32) -> Self {
        Self::with_prefetch(slots, 0)
    }

    /// An account for `slots` slots holding up to `prefetch` jobs ready.
    pub(crate) fn with_prefetch(slots: u32, prefetch: u32) -> Self {
        LaneAccount {
            slots,
            running: 0,
            held: 0,
            prefetch,
            limit: slots,
            reserved: 0,
            paused: false,
            wanted: true,
            draining: false,
        }
    }

    /// Slots neither running nor reserved.
    pub(crate) fn free(&self) -> u32 {
        self.limit.saturating_sub(self.running + self.reserved)
    }

    /// Slots not running (a claim in flight may be about to fill them).
    pub(crate) fn open_slots(&self) -> u32 {
        self.limit.saturating_sub(self.running)
    }

    /// Slots it may fill now (fewer than `slots` while throttled).
    pub(crate) fn limit(&self) -> u32 {
        self.limit
    }

    /// Limits the lane to `limit` of its slots (a latency target's throttle); raising
    /// the limit means it may claim again.
    pub(crate) fn set_limit(&mut self, limit: u32) {
        let limit = limit.min(self.slots);
        if limit > self.limit {
            self.wanted = true;
        }
        self.limit = limit;
    }

    /// Prefetched jobs held ready.
    pub(crate) fn held(&self) -> u32 {
        self.held
    }

    /// How many jobs the lane may hold ready.
    pub(crate) fn prefetch(&self) -> u32 {
        self.prefetch
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

    /// Slots held by the claim in flight: how many jobs it asked for.
    pub(crate) fn reserved(&self) -> u32 {
        self.reserved
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
        let open = self.open_slots().saturating_sub(self.held);
        // Held jobs fill open slots first, so with open slots there are none held;
        // without, claim only once the held jobs are down to the low-water mark.
        if open == 0 && self.held > self.prefetch / 2 {
            return None;
        }
        let room = self.prefetch.saturating_sub(self.held);
        let free = open + room;
        if free == 0 {
            return None;
        }
        self.wanted = false;
        self.reserved = free;
        Some(free)
    }

    /// Narrows the claim in flight to `limit` jobs (a borrowing claim asks only for its
    /// open slots: prefetched jobs are never more urgent than the lane's own range).
    pub(crate) fn narrow_claim(&mut self, limit: u32) {
        self.reserved = self.reserved.min(limit);
    }

    /// One job of the claim just ended is held ready instead of started.
    pub(crate) fn hold(&mut self) {
        self.running = self.running.saturating_sub(1);
        self.held += 1;
    }

    /// A held job starts in a free slot.
    pub(crate) fn unhold(&mut self) {
        self.held = self.held.saturating_sub(1);
        self.running += 1;
    }

    /// A held job is handed back (or its lease is gone).
    pub(crate) fn drop_held(&mut self) {
        self.held = self.held.saturating_sub(1);
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

    /// Sets the slots (the throttle's limit is then recomputed by the core).
    pub(crate) fn set_slots(&mut self, slots: u32) {
        if slots > self.slots {
            self.wanted = true;
        }
        self.slots = slots;
        self.limit = slots;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
    fn prefetch_claims_slots_plus_room_and_refills_at_low_water() {
        let mut a = LaneAccount::with_prefetch(4, 6);
        assert_eq!(a.begin_claim(), Some(10), "4 slots + 6 ready");
        a.end_claim(10, 10);
        for _ in 0..6 {
            a.hold();
        }
        assert_eq!((a.running(), a.held()), (4, 6));
        assert_eq!(a.begin_claim(), None, "full: no slot, no room");
        // Runs end, held jobs take their slots: no claim until 3 (half) are left.
        for left in [5, 4] {
            a.finish();
            a.unhold();
            assert_eq!(a.held(), left);
            assert_eq!(
                a.begin_claim(),
                None,
                "{left} held, over the low-water mark"
            );
        }
        a.finish();
        a.unhold();
        assert_eq!(a.begin_claim(), Some(3), "refill the room only");
        a.end_claim(3, 1);
        a.hold();
        assert_eq!((a.running(), a.held()), (4, 4));
        a.drop_held();
        assert_eq!(a.held(), 3);
    }

    #[test]
    fn no_prefetch_claims_exactly_as_before() {
        let mut a = LaneAccount::with_prefetch(3, 0);
        assert_eq!(a.begin_claim(), Some(3));
        a.narrow_claim(2);
        assert_eq!(a.reserved(), 2);
        a.end_claim(2, 2);
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

//! Slot accounting for one lane: when to claim and how many jobs to ask for.

/// Slot accounting for one lane. The dispatch core calls these methods; they decide
/// when to claim and how many jobs to ask for. A slot stays taken from the claim that
/// fills it until the run's future is gone (a run stuck on its thread keeps its slot).
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

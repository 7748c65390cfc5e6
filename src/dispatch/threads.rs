//! Handler-thread accounting: how many threads are stuck in a handler that blocks, which
//! runtime new runs go to, and whether any thread is left to start them.
//!
//! Handlers run on a multi-threaded runtime of `per_runtime` threads. A handler that
//! blocks its thread (a `std::thread::sleep`, a blocking client, a tight loop) cannot be
//! aborted: the thread is lost until the call returns. When one is found, new runs go to
//! a fresh runtime (the *generation* counts them), so the engine keeps its full thread
//! count, as long as no more than `cap` threads are stuck at once. Past the cap, new runs
//! share what is left of the current runtime; with nothing left, nothing is claimed.

use super::effects::ThreadChange;

#[derive(Debug, Clone)]
pub(crate) struct Threads {
    per_runtime: usize,
    cap: usize,
    /// The runtime new runs are launched on.
    generation: u32,
    /// Threads stuck now, all runtimes.
    stuck: usize,
    /// Of those, the ones in the current runtime (only past the cap).
    stuck_current: usize,
    /// Fresh runtimes started so far.
    replaced: u64,
}

impl Threads {
    pub(crate) fn new(per_runtime: usize, cap: usize) -> Self {
        Threads {
            per_runtime,
            cap,
            generation: 0,
            stuck: 0,
            stuck_current: 0,
            replaced: 0,
        }
    }

    pub(crate) fn generation(&self) -> u32 {
        self.generation
    }

    /// Threads stuck now.
    pub(crate) fn stuck(&self) -> usize {
        self.stuck
    }

    /// How many stuck threads are replaced at most.
    pub(crate) fn cap(&self) -> usize {
        self.cap
    }

    /// Threads per handler runtime.
    pub(crate) fn per_runtime(&self) -> usize {
        self.per_runtime
    }

    /// Threads free to poll new runs.
    pub(crate) fn usable(&self) -> usize {
        self.per_runtime.saturating_sub(self.stuck_current)
    }

    /// Fresh runtimes started so far.
    pub(crate) fn replaced(&self) -> u64 {
        self.replaced
    }

    /// A run of runtime `generation` is stuck on its thread.
    pub(crate) fn stuck_on(&mut self, generation: u32) -> Option<ThreadChange> {
        self.stuck += 1;
        if generation != self.generation {
            // A retired runtime: new runs do not go there anyway.
            return None;
        }
        if self.stuck <= self.cap {
            self.generation += 1;
            self.replaced += 1;
            self.stuck_current = 0;
            Some(ThreadChange::Replace)
        } else {
            self.stuck_current += 1;
            Some(ThreadChange::Reduced {
                usable: self.usable(),
            })
        }
    }

    /// A stuck run of runtime `generation` is gone: its thread is free again.
    pub(crate) fn freed_on(&mut self, generation: u32) -> ThreadChange {
        self.stuck = self.stuck.saturating_sub(1);
        if generation == self.generation {
            self.stuck_current = self.stuck_current.saturating_sub(1);
        }
        ThreadChange::Freed
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stuck_threads_are_replaced_up_to_the_cap_then_capacity_shrinks() {
        let mut t = Threads::new(2, 2);
        assert_eq!(t.stuck_on(0), Some(ThreadChange::Replace));
        assert_eq!((t.generation(), t.usable()), (1, 2));
        assert_eq!(t.stuck_on(0), None, "an old runtime: nothing to replace");
        assert_eq!(t.stuck(), 2);
        assert_eq!(
            t.stuck_on(1),
            Some(ThreadChange::Reduced { usable: 1 }),
            "past the cap"
        );
        assert_eq!(t.stuck_on(1), Some(ThreadChange::Reduced { usable: 0 }));
        t.freed_on(0);
        assert_eq!(t.usable(), 0, "a thread of an old runtime came free");
        t.freed_on(1);
        assert_eq!((t.usable(), t.stuck()), (1, 2));
        t.freed_on(0);
        assert_eq!(
            t.stuck_on(1),
            Some(ThreadChange::Replace),
            "under the cap again"
        );
        assert_eq!((t.generation(), t.usable(), t.replaced()), (2, 2, 2));
    }
}

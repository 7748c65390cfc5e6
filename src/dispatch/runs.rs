//! Runs: the jobs this process has started, keyed by job id and lease token.

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};
use std::time::{Duration, Instant};

use super::LaneId;

/// Identifies one run: the job and the lease token it was claimed under. Two runs of one
/// job (say, after a rescue) have different tokens, and every outcome is fenced by both.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) struct RunKey {
    pub(crate) job: i64,
    pub(crate) token: i64,
}

/// What the core needs to know about a claimed job to run it: read by the actor from the
/// claimed row and the job kind's registration.
#[derive(Debug, Clone, Copy)]
pub(crate) struct RunFacts {
    pub(crate) kind: &'static str,
    pub(crate) attempt: i32,
    pub(crate) max_attempts: i32,
    /// How long the run may take before it is timed out.
    pub(crate) timeout: Duration,
    /// How long the job waited between becoming due and being claimed.
    pub(crate) waited: Duration,
}

/// A run in progress, or stuck on its thread.
#[derive(Debug)]
pub(crate) struct Run<H> {
    pub(crate) lane: LaneId,
    pub(crate) facts: RunFacts,
    pub(crate) launched_at: Instant,
    pub(crate) deadline: Instant,
    /// A handler thread has polled it at least once. Only started runs have their
    /// lease renewed: a run that never got a thread is handed back, not held hostage.
    pub(crate) started: bool,
    /// A renewal found the lease gone (rescued elsewhere): its outcome will be fenced off.
    pub(crate) lease_lost: bool,
    /// A rescued job (its worker died running it before).
    pub(crate) rescued: bool,
    /// A user asked to cancel it: its deadline is the end of the cancel grace period.
    pub(crate) cancelling: bool,
    /// Written off while blocking its thread: it keeps its slot until its future is gone.
    pub(crate) stuck: bool,
    /// The handler runtime it was launched on (see `Threads`).
    pub(crate) generation: u32,
    /// How to abort it; taken when it is aborted.
    pub(crate) handle: Option<H>,
}

/// The running-jobs map. Keys are hashed with a multiply-rotate hash rather than SipHash:
/// ids and tokens come from the database and this process, not from users, and the map
/// is touched twice per job on the supervisor's single thread.
pub(crate) type RunMap<H> = HashMap<RunKey, Run<H>, BuildHasherDefault<KeyHasher>>;

/// FxHash-style hasher for [`RunKey`] (two integers).
#[derive(Default)]
pub(crate) struct KeyHasher(u64);

impl Hasher for KeyHasher {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        for b in bytes {
            self.write_u64(u64::from(*b));
        }
    }

    fn write_u64(&mut self, n: u64) {
        self.0 = (self.0.rotate_left(5) ^ n).wrapping_mul(0x51_7c_c1_b7_27_22_0a_95);
    }

    fn write_i64(&mut self, n: i64) {
        self.write_u64(n as u64);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::hash::BuildHasher;

    #[test]
    fn keys_hash_apart() {
        let h =
            |job, token| BuildHasherDefault::<KeyHasher>::default().hash_one(RunKey { job, token });
        assert_ne!(h(1, 2), h(2, 1));
        assert_ne!(h(1, 7), h(2, 7));
        assert_eq!(h(5, 9), h(5, 9));
    }
}

//! What the core asks its actor to do. Each core call appends to one [`Effects`] that the
//! actor owns and empties after every call, so its vectors keep their capacity and the
//! hot path allocates nothing here.

use std::time::{Duration, Instant};

use super::{LaneId, RunFacts, RunKey, WaiterId};
use crate::outcome::Action;

/// Everything a core call decided, to be carried out by the actor in this order:
/// claims, outcomes (hand-backs included), aborts, stuck runs, renewals, replies.
#[derive(Debug)]
pub(crate) struct Effects<H> {
    /// Claims to send to the lanes' claimers.
    pub(crate) claims: Vec<ClaimOrder>,
    /// Outcomes to write through the completer, hand-backs (`Action::Release`) included.
    pub(crate) outcomes: Vec<(RunKey, Action)>,
    /// Runs that ended (returned, or timed out) among `outcomes`, for logs and metrics
    /// (never alone: `is_empty` need not look at it).
    pub(crate) ended: Vec<RunEnded>,
    /// Rescued jobs to hand back before the one rescued job held here may start: write
    /// them and report with `hand_back_written` (see the poison-pill rule in `claims`).
    pub(crate) hand_backs_before_start: Vec<RunKey>,
    /// Runs to abort (timed out, stuck, or past the shutdown grace period).
    pub(crate) aborts: Vec<H>,
    /// Runs found blocking their handler thread past their timeout: log each once and
    /// write its outcome (which depends on how often the job got stuck before).
    pub(crate) stuck: Vec<StuckRun>,
    /// Leases to renew now.
    pub(crate) renewals: Vec<RunKey>,
    /// Pause and shutdown waiters to answer.
    pub(crate) replies: Vec<WaiterId>,
    /// What happened to the handler threads, if anything changed.
    pub(crate) threads: Option<ThreadChange>,
}

impl<H> Default for Effects<H> {
    fn default() -> Self {
        Effects {
            claims: Vec::new(),
            outcomes: Vec::new(),
            ended: Vec::new(),
            hand_backs_before_start: Vec::new(),
            aborts: Vec::new(),
            stuck: Vec::new(),
            renewals: Vec::new(),
            replies: Vec::new(),
            threads: None,
        }
    }
}

impl<H> Effects<H> {
    /// Whether there is nothing to do.
    pub(crate) fn is_empty(&self) -> bool {
        self.claims.is_empty()
            && self.outcomes.is_empty()
            && self.hand_backs_before_start.is_empty()
            && self.aborts.is_empty()
            && self.stuck.is_empty()
            && self.renewals.is_empty()
            && self.replies.is_empty()
            && self.threads.is_none()
    }
}

/// A run that ended with an outcome to write: `outcome` is its index in
/// [`Effects::outcomes`].
#[derive(Debug, Clone, Copy)]
pub(crate) struct RunEnded {
    pub(crate) key: RunKey,
    pub(crate) lane: LaneId,
    pub(crate) facts: RunFacts,
    pub(crate) launched_at: Instant,
    pub(crate) outcome: usize,
}

/// A claim to issue: lane `lane` asks for up to `limit` jobs no more urgent than
/// `floor` (and, fixed by the lane, no less urgent than its range), under `token`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct ClaimOrder {
    pub(crate) lane: LaneId,
    pub(crate) limit: u32,
    pub(crate) floor: i16,
    pub(crate) token: i64,
}

/// A run past its timeout whose handler thread has been inside one poll of it for
/// `blocked_for`: the thread is stuck (a blocking call in async code).
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct StuckRun {
    pub(crate) key: RunKey,
    pub(crate) lane: LaneId,
    pub(crate) kind: &'static str,
    pub(crate) attempt: i32,
    pub(crate) max_attempts: i32,
    pub(crate) timeout: Duration,
    pub(crate) blocked_for: Duration,
}

/// A change in the handler threads' health.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ThreadChange {
    /// A thread of the current runtime is stuck and within the cap: start a fresh
    /// runtime for new runs (the old one keeps its runs until they end).
    Replace,
    /// A thread is stuck and the cap is reached: runs go on with fewer threads.
    Reduced {
        /// Threads still usable for new runs (0: nothing is claimed until one frees).
        usable: usize,
    },
    /// A stuck thread came free.
    Freed,
}

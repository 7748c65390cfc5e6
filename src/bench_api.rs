//! Internals exposed for `benches/hot_paths.rs` only.
//!
//! **Not part of the stable API**: hidden from the docs, and free to change or disappear
//! in any release. The wrappers are thin (`#[inline]`) so the benchmark measures the
//! engine's own code, while the internals themselves stay `pub(crate)`.

use std::time::Duration;

use crate::backoff::Backoff;
use crate::lane;
use crate::outcome::{self, FailureCause, RunResult};

/// A lane's slot accounting, as the supervisor drives it.
#[derive(Debug, Clone)]
pub struct LaneAccount(lane::LaneAccount);

impl LaneAccount {
    /// Accounting for a lane with `slots` slots.
    #[inline]
    pub fn new(slots: u32) -> Self {
        LaneAccount(lane::LaneAccount::new(slots))
    }

    /// Notes that work may be waiting.
    #[inline]
    pub fn want(&mut self) {
        self.0.want();
    }

    /// Starts a claim if the lane should claim; answers how many jobs to ask for.
    #[inline]
    pub fn begin_claim(&mut self) -> Option<u32> {
        self.0.begin_claim()
    }

    /// Ends a claim that asked for `asked` jobs and got `got`.
    #[inline]
    pub fn end_claim(&mut self, asked: u32, got: u32) {
        self.0.end_claim(asked, got);
    }

    /// One job of the lane finished.
    #[inline]
    pub fn finish(&mut self) {
        self.0.finish();
    }

    /// Slots neither running nor reserved.
    #[inline]
    pub fn free(&self) -> u32 {
        self.0.free()
    }
}

/// How a run ended, as the executor reports it.
#[derive(Debug, Clone)]
pub enum RunEnd {
    /// The handler returned `Ok`.
    Succeeded,
    /// The handler returned a retryable error with this text.
    Failed(String),
    /// The handler cancelled the job with this reason.
    Cancelled(String),
    /// The handler snoozed the job for this long.
    Snoozed(Duration),
}

/// The decided state change for a run (opaque; only its name is exposed).
#[derive(Debug, Clone)]
pub struct Decision(outcome::Action);

impl Decision {
    /// The action's name as written to SQL: `complete`, `retry`, `fail`, `snooze`.
    #[inline]
    pub fn name(&self) -> &'static str {
        self.0.name()
    }
}

/// Decides what to write after attempt `attempt` of `max_attempts` ended as `end`.
#[inline]
pub fn decide(end: RunEnd, attempt: i32, max_attempts: i32, backoff: &Backoff) -> Decision {
    let result = match end {
        RunEnd::Succeeded => RunResult::Succeeded,
        RunEnd::Failed(error) => RunResult::Failed {
            error,
            cause: FailureCause::Error,
        },
        RunEnd::Cancelled(reason) => RunResult::Cancelled(reason),
        RunEnd::Snoozed(d) => RunResult::Snoozed(d),
    };
    Decision(outcome::decide(result, attempt, max_attempts, backoff))
}

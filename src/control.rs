//! Run-time control messages for the [`JobSupervisor`](crate::JobSupervisor).
//!
//! Send them with `supervisor.send(msg).await` to learn the result; `do_send` is fine
//! for fire-and-forget tuning. The [`Engine`](crate::Engine) handle wraps each one in a
//! method.

use std::time::Duration;

use actix::Message;

use crate::error::Result;
use crate::stats::EngineStats;

/// Stop claiming for a lane; its running jobs finish normally. Answers once the lane has
/// no claim in flight, so no job enqueued after that starts in it until [`Resume`].
#[derive(Debug, Clone)]
pub struct Pause(pub String);

impl Message for Pause {
    type Result = Result<()>;
}

/// Start claiming for a paused lane again (at once, not at the next poll).
#[derive(Debug, Clone)]
pub struct Resume(pub String);

impl Message for Resume {
    type Result = Result<()>;
}

/// Change a lane's slots. Raising it claims at once; lowering it lets running jobs finish
/// and replaces them only once the lane is under its new limit.
#[derive(Debug, Clone)]
pub struct SetConcurrency {
    /// The lane's name.
    pub lane: String,
    /// New number of slots, at least 1 (use [`Pause`] to stop a lane).
    pub slots: u32,
}

impl Message for SetConcurrency {
    type Result = Result<()>;
}

/// Cancel a job that has not started yet. Answers whether it was cancelled (`false` if
/// it is running, finished, or unknown).
#[derive(Debug, Clone, Copy)]
pub struct Cancel(pub i64);

impl Message for Cancel {
    type Result = Result<bool>;
}

/// Ask for the engine's statistics.
#[derive(Debug, Clone, Copy)]
pub struct Stats;

impl Message for Stats {
    type Result = Result<EngineStats>;
}

/// Stop the engine gracefully: stop claiming, let running jobs finish within the grace
/// period (the engine's `shutdown_grace` unless given), then return unfinished jobs to
/// `available` without using an attempt, write every outcome, and stop the actors.
#[derive(Debug, Clone, Copy, Default)]
pub struct Shutdown {
    /// Overrides the engine's grace period.
    pub grace: Option<Duration>,
}

impl Message for Shutdown {
    type Result = Result<ShutdownReport>;
}

/// What a graceful shutdown did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct ShutdownReport {
    /// Jobs that were running when shutdown began and finished within the grace period.
    pub finished: usize,
    /// Jobs still running at the deadline, returned to `available` (attempt given back).
    pub released: usize,
}

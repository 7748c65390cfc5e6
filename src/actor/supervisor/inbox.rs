//! The supervisor's inbox: the events its children and the engine handle send it.
//!
//! Children hold `Recipient`s of exactly these messages, never the supervisor's address,
//! so no child module depends on the supervisor and a test can stand in for it.

use actix::Message;

use crate::dispatch::{LaneId, RunKey};
use crate::error::Result;
use crate::store::ClaimedJob;

/// A notification arrived on the listener's channel: work may be waiting at `priority`
/// (the most urgent priority inserted), or anywhere if `None`. Counts as a notification
/// in `stats().listener`.
#[derive(Message, Debug, Clone, Copy)]
#[rtype(result = "()")]
pub(crate) struct JobsAvailable {
    pub(crate) priority: Option<i16>,
}

/// Jobs became due through this process (an enqueue, a retry, a rescue): wake the lanes
/// that can take `priority` (all if `None`) without waiting for the NOTIFY round trip.
/// Not a notification.
#[derive(Message, Debug, Clone, Copy)]
#[rtype(result = "()")]
pub(crate) struct WakeLanes {
    pub(crate) priority: Option<i16>,
}

/// The listener's connection came up (`up`) or went down (with the reason).
#[derive(Message, Debug, Clone)]
#[rtype(result = "()")]
pub(crate) struct ListenerChanged {
    pub(crate) up: bool,
    pub(crate) error: Option<String>,
}

/// A lane's claim came back from the database.
#[derive(Message)]
#[rtype(result = "()")]
pub(crate) struct ClaimReturned {
    pub(crate) lane: LaneId,
    pub(crate) token: i64,
    pub(crate) result: Result<Vec<ClaimedJob>>,
    /// The claim's round trip, as the claimer measured it.
    pub(crate) took: std::time::Duration,
}

/// Some runs ended: take them from the engine's `EndedRuns` queue.
#[derive(Message, Debug, Clone, Copy)]
#[rtype(result = "()")]
pub(crate) struct RunsEnded;

/// A user asked to cancel these runs (a notification, or a renewal that found the
/// request recorded): tell their handlers, and abort them after the grace period.
#[derive(Message, Debug)]
#[rtype(result = "()")]
pub(crate) struct CancelRequested(pub(crate) Vec<RunKey>);

/// A renewal found these runs' leases gone.
#[derive(Message, Debug)]
#[rtype(result = "()")]
pub(crate) struct LeasesLost(pub(crate) Vec<RunKey>);

/// The schema was found at this pglane's version, after a start without a database.
#[derive(Message, Debug, Clone, Copy)]
#[rtype(result = "()")]
pub(crate) struct SchemaVerified;

/// The heartbeat asks for the lanes as they are now (no database call).
#[derive(Message, Debug, Clone, Copy)]
#[rtype(result = "LanesNow")]
pub(crate) struct SnapshotLanes;

/// Each lane's state in this process, and whether the engine is connected.
#[derive(Debug, Clone, Default, actix::MessageResponse)]
pub(crate) struct LanesNow {
    pub(crate) lanes: Vec<LaneNow>,
    /// `notify` or `poll`.
    pub(crate) listener: &'static str,
    pub(crate) database_ok: bool,
}

/// One lane in [`LanesNow`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct LaneNow {
    pub(crate) name: String,
    pub(crate) lo: i16,
    pub(crate) hi: i16,
    pub(crate) slots: u32,
    pub(crate) running: u32,
    pub(crate) paused: bool,
}

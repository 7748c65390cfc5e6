//! The dispatch core: every rule about claiming, starting, timing out and handing back
//! jobs, in plain Rust.
//!
//! No actix, no database, no clock and no randomness of its own: the supervisor actor
//! feeds it events (woken at a priority, a claim returned, runs ended or started, a tick
//! at time `now`, a pause, a shutdown…) and carries out the [`Effects`] it returns
//! (claims to issue, outcomes to write, hand-backs, aborts, renewals, replies). Runs are
//! started through a [`Launcher`] the actor passes in, and the state of handler threads
//! is read through a [`RunProbe`], so every rule here runs in unit and property tests
//! (`tests.rs`, `proptests.rs`) exactly as in production.
//!
//! The rules, by file: `claims` (claim only into free slots, work-conserving borrowing,
//! at most one rescued job at a time per worker), `ends` (settling runs, lease loss),
//! `tick` (timeouts, stuck threads, runs that never started, renewals), `cancels`
//! (a user's cancel of a running job: a shorter deadline), `tuning`
//! (pause, resume, concurrency), `shutdown` (quiet, grace period), `threads` (stuck
//! handler threads and their replacement).

mod cancels;
mod claims;
mod effects;
mod ends;
mod lanes;
mod prefetch;
mod runs;
mod shutdown;
mod targets;
mod threads;
mod tick;
mod tuning;

#[cfg(test)]
mod proptests;
#[cfg(test)]
mod testkit;
#[cfg(test)]
mod tests;

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::backoff::Backoff;
use crate::lane::{LaneSpec, NotifyGate};

pub(crate) use effects::{ClaimOrder, Effects, RunEnded, StuckRun, ThreadChange};
pub(crate) use lanes::LaneState;
pub(crate) use runs::{RunFacts, RunKey};
pub(crate) use threads::Threads;

use runs::{Run, RunMap};

/// Index of a lane, in the order the lanes were configured.
pub(crate) type LaneId = usize;

/// A pause or shutdown waiting for an answer; the actor maps it to its reply channel.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) struct WaiterId(u64);

/// A claimed job, as far as the core needs to know it.
pub(crate) trait Claimed {
    fn id(&self) -> i64;
    /// Whether the job was rescued before: its worker died while running it.
    fn rescued(&self) -> bool;
}

/// Starts runs for the core.
pub(crate) trait Launcher<J> {
    /// How to abort a run.
    type Handle;
    /// Starts `job` as run `key` of lane `lane`; `None` if it cannot run in this process
    /// (its kind is not registered), in which case the core hands it back.
    fn launch(&mut self, lane: &LaneSpec, key: RunKey, job: J) -> Option<(Self::Handle, RunFacts)>;
}

/// What the handler threads are doing, read at each tick.
pub(crate) trait RunProbe {
    /// When the poll that run `key` is inside began, if a thread is polling it now.
    fn in_poll_since(&self, key: RunKey) -> Option<Instant>;
    /// Makes sure run `key`, never polled so far, never will be. False if it started.
    fn revoke_unstarted(&mut self, key: RunKey) -> bool;
}

/// The core's settings (from the engine's).
#[derive(Debug, Clone)]
pub(crate) struct CoreConfig {
    pub(crate) retry_backoff: Backoff,
    /// How often leases of started runs are renewed.
    pub(crate) renew_every: Duration,
    /// A run not polled within this is handed back (its runtime has no free thread).
    pub(crate) start_within: Duration,
    /// A run past its timeout that has been inside one poll this long is stuck.
    pub(crate) stuck_poll: Duration,
    /// Threads per handler runtime.
    pub(crate) threads: usize,
    /// Stuck threads replaced at most at once.
    pub(crate) max_stuck_threads: usize,
    /// How long a run a user cancelled may go on before it is aborted.
    pub(crate) cancel_grace: Duration,
}

/// A rescued job held back until its neighbours' hand-back is written.
#[derive(Debug)]
struct Held<J> {
    lane: LaneId,
    token: i64,
    job: J,
}

/// A prefetched job: claimed and leased, waiting for a slot of its lane.
#[derive(Debug)]
struct Ready<J> {
    key: RunKey,
    job: J,
}

#[derive(Debug)]
struct ShuttingDown {
    running_at_start: usize,
    waiters: Vec<WaiterId>,
}

/// The dispatch core of one engine. `J` is a claimed job, `H` a run's abort handle.
pub(crate) struct Dispatcher<J, H> {
    lanes: Vec<LaneState>,
    runs: RunMap<H>,
    /// Runs in `runs` that are stuck (they keep their slots until their future is gone).
    stuck_runs: usize,
    /// Rescued runs in `runs`, stuck ones excepted.
    rescued_running: usize,
    held: Option<Held<J>>,
    /// Each lane's prefetched jobs, most urgent first (empty unless it opted in).
    ready: Vec<VecDeque<Ready<J>>>,
    threads: Threads,
    shutdown: Option<ShuttingDown>,
    /// False until the schema is verified (the engine started without a database).
    claiming: bool,
    gate: Arc<NotifyGate>,
    /// One lease token per claim (injected: random in production, counted in tests).
    tokens: Box<dyn FnMut() -> i64>,
    next_waiter: u64,
    next_renewal: Option<Instant>,
    config: CoreConfig,
    /// Reused between ticks.
    scratch: Vec<RunKey>,
}

impl<J: Claimed, H> Dispatcher<J, H> {
    /// A core for `lanes` (each with its initial slots), claiming once `claiming`.
    pub(crate) fn new(
        lanes: Vec<(Arc<LaneSpec>, u32)>,
        gate: Arc<NotifyGate>,
        tokens: Box<dyn FnMut() -> i64>,
        claiming: bool,
        config: CoreConfig,
    ) -> Self {
        let ready = lanes.iter().map(|_| VecDeque::new()).collect();
        Dispatcher {
            lanes: lanes
                .into_iter()
                .map(|(spec, slots)| LaneState::new(spec, slots))
                .collect(),
            ready,
            runs: RunMap::default(),
            stuck_runs: 0,
            rescued_running: 0,
            held: None,
            threads: Threads::new(config.threads, config.max_stuck_threads),
            shutdown: None,
            claiming,
            gate,
            tokens,
            next_waiter: 0,
            next_renewal: None,
            config,
            scratch: Vec::new(),
        }
    }

    /// The lane called `name`.
    pub(crate) fn lane_id(&self, name: &str) -> Option<LaneId> {
        self.lanes.iter().position(|l| &*l.spec.name == name)
    }

    /// Every lane's state, for stats.
    pub(crate) fn lanes(&self) -> &[LaneState] {
        &self.lanes
    }

    /// The handler threads' state, for stats.
    pub(crate) fn threads(&self) -> &Threads {
        &self.threads
    }

    /// Runs in progress (stuck ones excepted).
    pub(crate) fn running(&self) -> usize {
        self.runs.len() - self.stuck_runs
    }

    /// Whether claims are allowed (the schema is verified).
    pub(crate) fn claiming(&self) -> bool {
        self.claiming
    }

    /// Whether shutdown has begun.
    pub(crate) fn shutting_down(&self) -> bool {
        self.shutdown.is_some()
    }

    /// Stuck runs of handler runtime `generation`: once a retired runtime has nothing
    /// else left, it can be shut down (its stuck threads leak until their calls return).
    pub(crate) fn stuck_on(&self, generation: u32) -> usize {
        self.runs
            .values()
            .filter(|r| r.stuck && r.generation == generation)
            .count()
    }

    fn new_waiter(&mut self) -> WaiterId {
        self.next_waiter += 1;
        WaiterId(self.next_waiter)
    }
}

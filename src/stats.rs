//! Statistics reported by the supervisor.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use crate::lane::LaneSpec;

/// A snapshot of the engine and its queue.
#[derive(Debug, Clone, Default)]
#[non_exhaustive]
pub struct EngineStats {
    /// Per lane: slots, running, waiting.
    pub lanes: Vec<LaneStats>,
    /// Jobs of this engine's queue by state (all processes).
    pub states: StateCounts,
    /// Waiting jobs of kinds this process has not registered (it never claims them).
    pub unregistered_kinds: Vec<(String, i64)>,
    /// The notification listener.
    pub listener: ListenerStats,
    /// Whether the database is serving the engine.
    pub database: DatabaseStats,
    /// The threads handlers run on.
    pub handlers: HandlerStats,
    /// Jobs this process has started, all lanes.
    pub started: u64,
    /// The database connections this engine holds now, and the most it may open.
    pub connections: ConnectionStats,
    /// How long this engine's claims took, since it started (statement round trips).
    pub claim_times: StatementTimes,
    /// How long writing batches of outcomes took, since it started.
    pub outcome_times: StatementTimes,
    /// Every periodic job stored in the schema, declared by this engine or not (see
    /// [`ScheduleStats::active`](crate::ScheduleStats::active)).
    pub schedules: Vec<crate::ScheduleStats>,
}

/// The database connections an engine holds: its own pool (claims, outcomes, leases,
/// maintenance), the handlers' pool, and the listener. At most
/// `engine_max + handler_max + 1` are open at once; idle pooled ones close after 30 s.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct ConnectionStats {
    /// Open connections of the engine's own pool.
    pub engine_open: u32,
    /// Of those, idle now.
    pub engine_idle: u32,
    /// The engine pool's size: lanes + 3.
    pub engine_max: u32,
    /// Open connections of the handlers' pool ([`JobContext::pool`](crate::JobContext::pool)).
    pub handler_open: u32,
    /// Of those, idle now.
    pub handler_idle: u32,
    /// The handlers' pool size (`pool_size`).
    pub handler_max: u32,
    /// Whether the listener holds its connection (1 more).
    pub listener: bool,
    /// Connection attempts of the engine pool the server refused for lack of resources
    /// (SQLSTATE class 53, e.g. `max_connections` reached), since start.
    pub refused: u64,
}

impl ConnectionStats {
    /// Connections open now, all kinds.
    pub fn open(&self) -> u32 {
        self.engine_open + self.handler_open + u32::from(self.listener)
    }
}

/// Durations of one kind of statement: count and percentiles (from a histogram with
/// about 19% resolution; `max` is exact).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct StatementTimes {
    /// Statements measured.
    pub count: u64,
    /// Median.
    pub p50: Duration,
    /// 99th percentile.
    pub p99: Duration,
    /// Longest.
    pub max: Duration,
}

/// The threads handlers run on, and the ones lost to handlers that block them.
///
/// A handler that blocks its thread (a `std::thread::sleep`, a blocking client, a tight
/// loop in async code) past its timeout cannot be aborted: its thread is *stuck* until
/// the call returns. The engine then starts fresh threads for new runs, so it keeps its
/// full `threads`, as long as no more than `max_stuck_threads` are stuck at once; past
/// that, `usable_threads` drops (capacity reduced), and at 0 nothing is claimed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct HandlerStats {
    /// Threads per handler runtime (`handler_threads`).
    pub threads: usize,
    /// Threads stuck in a handler now (each also holds its run's lane slot).
    pub stuck_threads: usize,
    /// Stuck threads replaced at most at once (`max_stuck_threads`).
    pub max_stuck_threads: usize,
    /// Threads free to run new jobs: `threads` unless more than `max_stuck_threads` are
    /// stuck (capacity reduced).
    pub usable_threads: usize,
    /// Fresh handler runtimes started so far to replace stuck threads.
    pub replaced: u64,
}

/// One lane's view.
#[derive(Debug, Clone, Default)]
#[non_exhaustive]
pub struct LaneStats {
    /// The lane's name.
    pub name: String,
    /// Its priority range, inclusive.
    pub priorities: (i16, i16),
    /// Its slots.
    pub concurrency: u32,
    /// Jobs running in it now (this process), stuck ones included.
    pub running: u32,
    /// How many claimed jobs it may hold ready beyond its slots (`Lane::prefetch`).
    pub prefetch: u32,
    /// Claimed, leased jobs it holds ready now, waiting for a slot (prefetched).
    pub prefetched: u32,
    /// Its latency target (`Lane::target_wait`), if any.
    pub target_wait: Option<Duration>,
    /// With a target: the 99th percentile of its last 256 claim round trips that brought
    /// jobs back (the wait the target controls).
    pub wait_p99: Option<Duration>,
    /// The share of its slots it may fill now: 1.0 unless a more urgent lane's latency
    /// target throttles it (then down to 1/64, and at least one slot).
    pub throttle: f64,
    /// Of those, runs past their timeout still blocking their handler thread: each holds
    /// its slot until its blocking call returns (see [`HandlerStats`]).
    pub stuck: u32,
    /// Whether it is paused.
    pub paused: bool,
    /// Jobs due now in its priority range (all processes).
    pub waiting: i64,
    /// How long the oldest of those has been due.
    pub oldest_wait: Option<Duration>,
    /// Jobs this lane has started in this process.
    pub started: u64,
    /// Sum over started jobs of (start − due time), for average waits.
    pub total_wait: Duration,
    /// Longest such wait.
    pub max_wait: Duration,
}

/// Jobs by state.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct StateCounts {
    /// Due now, waiting for a worker.
    pub available: i64,
    /// Waiting for their `run_at` (scheduled, or backing off before a retry).
    pub scheduled: i64,
    /// Running under a lease.
    pub running: i64,
    /// Completed, within retention.
    pub completed: i64,
    /// Failed for good, within retention.
    pub failed: i64,
    /// Cancelled by a user (or with a parent that failed), within retention.
    pub cancelled: i64,
    /// Waiting for parent jobs to complete (see `Engine::enqueue_flow`): not claimable
    /// yet, and counted nowhere else.
    pub waiting_on_parents: i64,
}

/// Whether workers are woken by NOTIFY or find work by polling alone.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum ListenerMode {
    /// The listener is connected and subscribed: NOTIFY wakes the lanes, polling is the
    /// backstop.
    Notify,
    /// The listener is down or its server cannot take writes: lanes poll faster until it
    /// is back.
    #[default]
    PollOnly,
}

/// The notification listener's state.
#[derive(Debug, Clone, Default)]
#[non_exhaustive]
pub struct ListenerStats {
    /// Notify or poll-only.
    pub mode: ListenerMode,
    /// When the last notification arrived.
    pub last_notification: Option<SystemTime>,
    /// How many times the listener has connected (1 after a clean start).
    pub connects: u64,
    /// Why it last went down, if it did.
    pub last_error: Option<String>,
}

/// The database as the engine sees it.
#[derive(Debug, Clone, Default)]
#[non_exhaustive]
pub struct DatabaseStats {
    /// `false` while the database is unreachable, read-only or shutting down; the engine
    /// then polls and probes it once per backoff interval.
    pub available: bool,
    /// Why it is unavailable (e.g. "cannot execute UPDATE in a read-only transaction").
    pub last_error: Option<String>,
    /// Whether the schema version has been verified (false only when the engine
    /// started while the database was unavailable and it has not come back yet).
    pub schema_verified: bool,
}

/// One group of live jobs of the queue, as the store reads them: jobs in `state` of
/// `priority` and `kind`, `due` now or scheduled, how many, and how long the oldest has
/// been due.
#[derive(Debug, Clone)]
pub(crate) struct LiveRow {
    pub(crate) state: String,
    pub(crate) priority: i16,
    pub(crate) kind: String,
    pub(crate) due: bool,
    pub(crate) count: i64,
    pub(crate) oldest_wait_s: f64,
}

/// Fills each lane's `waiting` and `oldest_wait`, and the state counts, from live rows.
/// A group belongs to the lane whose own range holds its priority.
pub(crate) fn summarize(
    lanes: &[Arc<LaneSpec>],
    registered: &[String],
    live: &[LiveRow],
    finished: &[(String, i64)],
    out: &mut EngineStats,
) {
    let mut unregistered: Vec<(String, i64)> = Vec::new();
    for row in live {
        match (row.state.as_str(), row.due) {
            ("running", _) => out.states.running += row.count,
            ("waiting", _) => out.states.waiting_on_parents += row.count,
            (_, false) => out.states.scheduled += row.count,
            (_, true) => {
                out.states.available += row.count;
                if !registered.iter().any(|k| k == &row.kind) {
                    match unregistered.iter_mut().find(|(k, _)| *k == row.kind) {
                        Some((_, n)) => *n += row.count,
                        None => unregistered.push((row.kind.clone(), row.count)),
                    }
                }
                if let Some((i, _)) = lanes
                    .iter()
                    .enumerate()
                    .find(|(_, l)| row.priority >= l.lo && row.priority <= l.hi)
                {
                    let lane = &mut out.lanes[i];
                    lane.waiting += row.count;
                    let wait = Duration::from_secs_f64(row.oldest_wait_s.max(0.0));
                    lane.oldest_wait = Some(lane.oldest_wait.map_or(wait, |w| w.max(wait)));
                }
            }
        }
    }
    for (state, n) in finished {
        match state.as_str() {
            "completed" => out.states.completed += n,
            "failed" => out.states.failed += n,
            "cancelled" => out.states.cancelled += n,
            _ => {}
        }
    }
    unregistered.sort();
    out.unregistered_kinds = unregistered;
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(state: &str, priority: i16, kind: &str, due: bool, count: i64, wait: f64) -> LiveRow {
        LiveRow {
            state: state.into(),
            priority,
            kind: kind.into(),
            due,
            count,
            oldest_wait_s: wait,
        }
    }

    #[test]
    fn rows_land_in_their_lanes_and_states() {
        let lanes: Vec<Arc<LaneSpec>> = vec![
            crate::lane::Lane::new("urgent").priorities(0..=9).split().0,
            crate::lane::Lane::new("bulk").priorities(10..).split().0,
        ];
        let mut out = EngineStats {
            lanes: lanes
                .iter()
                .map(|l| LaneStats {
                    name: l.name.to_string(),
                    ..Default::default()
                })
                .collect(),
            ..Default::default()
        };
        let live = vec![
            row("available", 1, "mail", true, 3, 2.0),
            row("available", 5, "mail", true, 2, 5.0),
            row("available", 500, "mail", true, 10, 1.0),
            row("available", 500, "mail", false, 7, -3.0),
            row("available", 500, "legacy", true, 4, 9.0),
            row("running", 1, "mail", true, 6, 0.0),
        ];
        let fin = vec![("completed".to_string(), 100), ("failed".to_string(), 2)];
        summarize(&lanes, &["mail".to_string()], &live, &fin, &mut out);
        assert_eq!((out.lanes[0].waiting, out.lanes[1].waiting), (5, 14));
        assert_eq!(out.lanes[0].oldest_wait, Some(Duration::from_secs(5)));
        assert_eq!(out.lanes[1].oldest_wait, Some(Duration::from_secs(9)));
        let s = out.states;
        assert_eq!(
            (s.available, s.scheduled, s.running, s.completed, s.failed),
            (19, 7, 6, 100, 2)
        );
        assert_eq!(out.unregistered_kinds, vec![("legacy".to_string(), 4)]);
    }
}

//! Metrics through the [`metrics`] facade: the application installs the recorder it
//! wants (Prometheus, OpenTelemetry, StatsD…; `pglane::prometheus` has one ready).
//! Without a recorder every call below is a no-op on a handle.
//!
//! Names, units and labels (the README lists them for users): base units (seconds,
//! jobs), counters end in `_total`, and no label is per job: `queue`, `lane`, `kind`
//! (registered kinds, a fixed set) and `outcome` only. Handles are looked up once per
//! (lane, kind, outcome) and kept, so the hot path is an atomic add or a histogram
//! sample per job.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use metrics::{counter, gauge, histogram, Counter, Gauge, Histogram, SharedString};

use crate::outcome::Action;
use crate::stats::{EngineStats, ListenerMode};

/// Every metric name pglane emits.
pub(crate) mod names {
    pub(crate) const ENQUEUED: &str = "pglane_jobs_enqueued_total";
    pub(crate) const STARTED: &str = "pglane_jobs_started_total";
    pub(crate) const FINISHED: &str = "pglane_jobs_finished_total";
    pub(crate) const RESCUED: &str = "pglane_jobs_rescued_total";
    pub(crate) const POISONED: &str = "pglane_jobs_poisoned_total";
    pub(crate) const WAIT: &str = "pglane_job_wait_seconds";
    pub(crate) const RUN: &str = "pglane_job_run_seconds";
    pub(crate) const CLAIM: &str = "pglane_claim_seconds";
    pub(crate) const CLAIM_BATCH: &str = "pglane_claim_batch_jobs";
    pub(crate) const OUTCOME_BATCH: &str = "pglane_outcome_batch_jobs";
    pub(crate) const OUTCOME_WRITE: &str = "pglane_outcome_write_seconds";
    pub(crate) const LANE_SLOTS: &str = "pglane_lane_slots";
    pub(crate) const LANE_RUNNING: &str = "pglane_lane_running";
    pub(crate) const LANE_WAITING: &str = "pglane_lane_waiting";
    pub(crate) const LANE_OLDEST_WAIT: &str = "pglane_lane_oldest_wait_seconds";
    pub(crate) const LISTENER_CONNECTED: &str = "pglane_listener_connected";
    pub(crate) const DATABASE_AVAILABLE: &str = "pglane_database_available";
}

/// How a run's outcome is counted in `pglane_jobs_finished_total{outcome}`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) enum Outcome {
    Completed,
    Retried,
    Snoozed,
    Failed,
    Cancelled,
    /// The write was rejected: the run had lost its lease (a newer attempt owns the job).
    Fenced,
}

impl Outcome {
    /// The outcome an action counts as; `None` for a hand-back (the job never ran to its
    /// end here, so nothing finished).
    pub(crate) fn of(action: &Action) -> Option<Outcome> {
        match action {
            Action::Complete => Some(Outcome::Completed),
            Action::Retry { .. } => Some(Outcome::Retried),
            Action::Snooze { .. } => Some(Outcome::Snoozed),
            Action::Fail { cause, .. } if *cause == "cancel" => Some(Outcome::Cancelled),
            Action::Fail { .. } => Some(Outcome::Failed),
            Action::Release => None,
        }
    }

    /// The label value.
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Outcome::Completed => "completed",
            Outcome::Retried => "retried",
            Outcome::Snoozed => "snoozed",
            Outcome::Failed => "failed",
            Outcome::Cancelled => "cancelled",
            Outcome::Fenced => "fenced",
        }
    }
}

/// Lane `lane` (an index into the engine's lanes) and job kind of a run, carried with
/// its outcome so the completer can count it once written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) struct RunLabels {
    pub(crate) lane: u16,
    pub(crate) kind: &'static str,
}

/// One engine's label values: its queue and its lanes' names, by lane index.
#[derive(Debug, Clone)]
pub(crate) struct EngineLabels {
    queue: SharedString,
    lanes: Arc<[SharedString]>,
    names: Arc<[Arc<str>]>,
}

impl EngineLabels {
    pub(crate) fn new(queue: &str, lanes: impl IntoIterator<Item = Arc<str>>) -> Self {
        let names: Arc<[Arc<str>]> = lanes.into_iter().collect();
        EngineLabels {
            queue: SharedString::from(queue.to_string()),
            lanes: names
                .iter()
                .map(|l| SharedString::from(l.to_string()))
                .collect(),
            names,
        }
    }

    /// The index of the lane called `name` (the engine's lanes are few: a scan, first by
    /// pointer, is cheaper than a hash).
    pub(crate) fn lane_index(&self, name: &Arc<str>) -> u16 {
        self.names
            .iter()
            .position(|n| Arc::ptr_eq(n, name))
            .or_else(|| self.names.iter().position(|n| n == name))
            .unwrap_or(usize::from(u16::MAX)) as u16
    }

    fn lane(&self, lane: u16) -> SharedString {
        self.lanes
            .get(usize::from(lane))
            .cloned()
            .unwrap_or_else(|| SharedString::const_str(""))
    }

    /// Handles of one lane's claims: round trip and jobs per claim.
    pub(crate) fn claims(&self, lane: u16) -> ClaimMetrics {
        let labels = [("queue", self.queue.clone()), ("lane", self.lane(lane))];
        ClaimMetrics {
            seconds: histogram!(names::CLAIM, &labels),
            jobs: histogram!(names::CLAIM_BATCH, &labels),
        }
    }

    /// The gauges of one lane: slots, running, waiting, oldest wait.
    pub(crate) fn lane_gauges(&self, lane: u16) -> [Gauge; 4] {
        let labels = [("queue", self.queue.clone()), ("lane", self.lane(lane))];
        [
            gauge!(names::LANE_SLOTS, &labels),
            gauge!(names::LANE_RUNNING, &labels),
            gauge!(names::LANE_WAITING, &labels),
            gauge!(names::LANE_OLDEST_WAIT, &labels),
        ]
    }

    /// The engine's gauges: listener connected, database available (1 or 0).
    pub(crate) fn engine_gauges(&self) -> [Gauge; 2] {
        let labels = [("queue", self.queue.clone())];
        [
            gauge!(names::LISTENER_CONNECTED, &labels),
            gauge!(names::DATABASE_AVAILABLE, &labels),
        ]
    }
}

/// The gauges of one engine's lanes and of the engine itself.
pub(crate) struct Gauges {
    lanes: Vec<[Gauge; 4]>,
    engine: [Gauge; 2],
}

impl Gauges {
    pub(crate) fn new(labels: &EngineLabels, lanes: usize) -> Self {
        Gauges {
            lanes: (0..lanes).map(|i| labels.lane_gauges(i as u16)).collect(),
            engine: labels.engine_gauges(),
        }
    }

    /// Sets every gauge from `stats`.
    pub(crate) fn set(&self, stats: &EngineStats) {
        for (g, lane) in self.lanes.iter().zip(&stats.lanes) {
            g[0].set(f64::from(lane.concurrency));
            g[1].set(f64::from(lane.running));
            g[2].set(lane.waiting as f64);
            g[3].set(lane.oldest_wait.unwrap_or_default().as_secs_f64());
        }
        let connected = stats.listener.mode == ListenerMode::Notify;
        self.engine[0].set(if connected { 1.0 } else { 0.0 });
        self.engine[1].set(if stats.database.available { 1.0 } else { 0.0 });
    }
}

/// A lane's claim handles.
pub(crate) struct ClaimMetrics {
    seconds: Histogram,
    jobs: Histogram,
}

impl ClaimMetrics {
    /// A claim that took `took` and brought back `jobs` jobs.
    pub(crate) fn claimed(&self, took: Duration, jobs: usize) {
        self.seconds.record(took.as_secs_f64());
        self.jobs.record(jobs as f64);
    }
}

struct RunHandles {
    started: Counter,
    wait: Histogram,
    run: Histogram,
}

/// Runs started and ended, by lane and kind (held by the supervisor).
pub(crate) struct RunMetrics {
    labels: EngineLabels,
    handles: HashMap<RunLabels, RunHandles>,
}

impl RunMetrics {
    pub(crate) fn new(labels: EngineLabels) -> Self {
        RunMetrics {
            labels,
            handles: HashMap::new(),
        }
    }

    fn handles(&mut self, run: RunLabels) -> &RunHandles {
        let labels = &self.labels;
        self.handles.entry(run).or_insert_with(|| {
            let l = [
                ("queue", labels.queue.clone()),
                ("lane", labels.lane(run.lane)),
                ("kind", SharedString::const_str(run.kind)),
            ];
            RunHandles {
                started: counter!(names::STARTED, &l),
                wait: histogram!(names::WAIT, &l),
                run: histogram!(names::RUN, &l),
            }
        })
    }

    /// The index of the lane called `name`.
    pub(crate) fn lane_index(&self, name: &Arc<str>) -> u16 {
        self.labels.lane_index(name)
    }

    /// A run started after its job waited `waited` since it was due.
    pub(crate) fn started(&mut self, run: RunLabels, waited: Duration) {
        let h = self.handles(run);
        h.started.increment(1);
        h.wait.record(waited.as_secs_f64());
    }

    /// A run ended after `ran_for`.
    pub(crate) fn ended(&mut self, run: RunLabels, ran_for: Duration) {
        self.handles(run).run.record(ran_for.as_secs_f64());
    }
}

/// Outcomes written (or fenced off), by lane, kind and outcome (held by the completer).
pub(crate) struct OutcomeMetrics {
    labels: EngineLabels,
    finished: HashMap<(RunLabels, Outcome), Counter>,
    batch: Histogram,
    write: Histogram,
}

impl OutcomeMetrics {
    pub(crate) fn new(labels: EngineLabels) -> Self {
        let l = [("queue", labels.queue.clone())];
        OutcomeMetrics {
            batch: histogram!(names::OUTCOME_BATCH, &l),
            write: histogram!(names::OUTCOME_WRITE, &l),
            labels,
            finished: HashMap::new(),
        }
    }

    /// A batch of `jobs` outcomes written in `took`.
    pub(crate) fn batch(&self, jobs: usize, took: Duration) {
        self.batch.record(jobs as f64);
        self.write.record(took.as_secs_f64());
    }

    /// One run's outcome, counted once written (or fenced off).
    pub(crate) fn finished(&mut self, run: RunLabels, outcome: Outcome) {
        let labels = &self.labels;
        self.finished
            .entry((run, outcome))
            .or_insert_with(|| {
                counter!(
                    names::FINISHED,
                    "queue" => labels.queue.clone(),
                    "lane" => labels.lane(run.lane),
                    "kind" => SharedString::const_str(run.kind),
                    "outcome" => outcome.as_str(),
                )
            })
            .increment(1);
    }
}

/// Jobs enqueued through an engine (or the SQL-free paths of the kit), by queue and kind.
pub(crate) fn enqueued(queue: &str, kind: &str, n: u64) {
    if n > 0 {
        counter!(names::ENQUEUED, "queue" => queue.to_string(), "kind" => kind.to_string())
            .increment(n);
    }
}

/// Jobs rescued (their lease expired) and failed as poison pills by a maintenance pass of
/// `schema` (rescues are schema-wide, not per queue).
pub(crate) fn rescued(schema: &str, rescued: u64, poisoned: u64) {
    if rescued > 0 {
        counter!(names::RESCUED, "schema" => schema.to_string()).increment(rescued);
    }
    if poisoned > 0 {
        counter!(names::POISONED, "schema" => schema.to_string()).increment(poisoned);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn outcomes_of_actions() {
        let fail = |cause| Action::Fail {
            error: String::new(),
            cause,
        };
        assert_eq!(Outcome::of(&Action::Complete), Some(Outcome::Completed));
        assert_eq!(
            Outcome::of(&Action::Retry {
                delay: Duration::ZERO,
                error: String::new(),
                cause: "panic"
            }),
            Some(Outcome::Retried)
        );
        assert_eq!(
            Outcome::of(&Action::Snooze {
                delay: Duration::ZERO
            }),
            Some(Outcome::Snoozed)
        );
        assert_eq!(Outcome::of(&fail("cancel")), Some(Outcome::Cancelled));
        assert_eq!(Outcome::of(&fail("error")), Some(Outcome::Failed));
        assert_eq!(Outcome::of(&fail("timeout")), Some(Outcome::Failed));
        assert_eq!(Outcome::of(&Action::Release), None);
    }

    #[test]
    fn lane_labels_out_of_range_are_empty() {
        let l = EngineLabels::new("q", [Arc::from("a")]);
        assert_eq!(&*l.lane(0), "a");
        assert_eq!(&*l.lane(7), "");
    }
}

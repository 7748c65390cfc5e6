//! Runs jobs inline, on the test's task: one given job, or a whole queue until empty.
//! Each run is claimed and its outcome written exactly as the engine does it (the same
//! claim state change, the same outcome decision and statement), so a test sees the
//! same rows afterwards.

use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::time::Duration;

use futures_util::FutureExt;
use tracing::Instrument;

use crate::backoff::Backoff;
use crate::error::{Error, Result};
use crate::job::{DataMap, Job, JobContext, Registration, Registry};
use crate::ops::Ops;
use crate::outcome::{decide, Action, FailureCause, RunResult};
use crate::store::{OutcomeRow, Store};
use crate::telemetry::spans::{process_span, RunSpan};

/// How an inline run ended (and what was written for the job).
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum Ran {
    /// The handler succeeded; the job is `completed`.
    Completed,
    /// The attempt failed and attempts remain; the job is back, due after its backoff.
    Retried {
        /// The error text recorded.
        error: String,
    },
    /// The attempt failed and none remain; the job is `failed`.
    Failed {
        /// The error text recorded.
        error: String,
    },
    /// The handler cancelled the job; it is `failed` with the reason.
    Cancelled {
        /// The text recorded (`cancelled by handler: …`).
        reason: String,
    },
    /// The handler snoozed; the job is back, due after `delay`, its attempt given back.
    Snoozed {
        /// How long it sleeps.
        delay: Duration,
    },
}

impl Ran {
    fn of(action: &Action) -> Ran {
        match action {
            Action::Complete => Ran::Completed,
            Action::Retry { error, .. } => Ran::Retried {
                error: error.clone(),
            },
            Action::Fail { error, cause } if *cause == "cancel" => Ran::Cancelled {
                reason: error.clone(),
            },
            Action::Fail { error, .. } => Ran::Failed {
                error: error.clone(),
            },
            Action::Snooze { delay } => Ran::Snoozed { delay: *delay },
            // Not decided for a run that returned.
            Action::Release => Ran::Snoozed {
                delay: Duration::ZERO,
            },
        }
    }
}

/// What a drain ran, by outcome. Compare with `Drained { completed: 3, ..Drained::default() }`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Drained {
    /// Runs that completed their job.
    pub completed: u64,
    /// Failed attempts that will be retried.
    pub retried: u64,
    /// Jobs failed for good (attempts used up).
    pub failed: u64,
    /// Jobs cancelled by their handler.
    pub cancelled: u64,
    /// Runs that snoozed.
    pub snoozed: u64,
}

impl Drained {
    fn count(&mut self, ran: &Ran) {
        match ran {
            Ran::Completed => self.completed += 1,
            Ran::Retried { .. } => self.retried += 1,
            Ran::Failed { .. } => self.failed += 1,
            Ran::Cancelled { .. } => self.cancelled += 1,
            Ran::Snoozed { .. } => self.snoozed += 1,
        }
    }

    /// Runs in all.
    pub fn runs(&self) -> u64 {
        self.completed + self.retried + self.failed + self.cancelled + self.snoozed
    }
}

/// Runs a queue's jobs inline, most urgent first, until none of the registered kinds
/// is left; made by [`TestSchema::drain`](super::TestSchema::drain).
///
/// By default it runs due jobs, including jobs that the jobs it runs enqueue. With
/// [`with_scheduled`](Self::with_scheduled) it also runs jobs scheduled for later (and
/// retries at once instead of after their backoff, so a failing job runs until its
/// attempts are used up). With [`with_recursion(false)`](Self::with_recursion) it runs
/// only the jobs present when it starts.
#[must_use = "a drain does nothing until `run` is awaited"]
pub struct Drain<'a> {
    store: &'a Store,
    ops: &'a Arc<Ops>,
    data: &'a Arc<DataMap>,
    registry: Registry,
    queue: String,
    scheduled: bool,
    recursion: bool,
    max_runs: u64,
}

impl<'a> Drain<'a> {
    pub(super) fn new(store: &'a Store, ops: &'a Arc<Ops>, data: &'a Arc<DataMap>) -> Self {
        Drain {
            store,
            ops,
            data,
            registry: Registry::default(),
            queue: crate::DEFAULT_QUEUE.to_string(),
            scheduled: false,
            recursion: true,
            max_runs: 10_000,
        }
    }

    /// Runs jobs of kind `J` (others are left alone).
    pub fn register<J: Job>(mut self) -> Self {
        self.registry.add(Registration::of::<J>());
        self
    }

    /// The queue to drain. Defaults to `default`.
    pub fn queue(mut self, queue: impl Into<String>) -> Self {
        self.queue = queue.into();
        self
    }

    /// Also runs jobs scheduled for later, and retries without waiting for their
    /// backoff. Defaults to `false`.
    pub fn with_scheduled(mut self, yes: bool) -> Self {
        self.scheduled = yes;
        self
    }

    /// Also runs jobs enqueued while draining (by the jobs it runs). Defaults to `true`.
    pub fn with_recursion(mut self, yes: bool) -> Self {
        self.recursion = yes;
        self
    }

    /// Fails with [`Error::InvalidConfig`] after this many runs (a job that keeps
    /// snoozing, or enqueues itself, would drain forever). Defaults to 10,000.
    pub fn max_runs(mut self, n: u64) -> Self {
        self.max_runs = n;
        self
    }

    /// Runs until no job is left; answers what ran, by outcome.
    pub async fn run(self) -> Result<Drained> {
        let kinds = self.registry.kinds();
        let only: Option<Vec<i64>> = if self.recursion {
            None
        } else {
            Some(self.store.drain_candidates(&self.queue, &kinds).await?)
        };
        let mut drained = Drained::default();
        while let Some(id) = self
            .store
            .next_to_drain(&self.queue, &kinds, self.scheduled, only.as_deref())
            .await?
        {
            if drained.runs() >= self.max_runs {
                return Err(Error::InvalidConfig(format!(
                    "drain of queue {:?} still had jobs after {} runs ({drained:?})",
                    self.queue, self.max_runs
                )));
            }
            let ran = run_one(self.store, self.ops, &self.registry, self.data, id).await?;
            drained.count(&ran);
        }
        Ok(drained)
    }
}

/// Claims job `id`, runs its handler inline, writes the outcome.
pub(super) async fn run_one(
    store: &Store,
    ops: &Arc<Ops>,
    registry: &Registry,
    data: &Arc<DataMap>,
    id: i64,
) -> Result<Ran> {
    let token = fastrand::i64(1..i64::MAX);
    let (job, queue) = store.claim_job(id, token).await?.ok_or_else(|| {
        Error::InvalidConfig(format!(
            "job {id} is not available to run (no such job, running, or finished)"
        ))
    })?;
    let Some(reg) = registry.get(&job.kind) else {
        // Put it back as it was: the claim used no attempt of the job's.
        store
            .write_outcomes(
                &[OutcomeRow {
                    id,
                    token,
                    action: Action::Release,
                    labels: None,
                }],
                true,
            )
            .await?;
        return Err(Error::InvalidConfig(format!(
            "job {id} is of kind {:?}, which is not registered for this run",
            job.kind
        )));
    };
    let ctx = JobContext {
        id,
        kind: reg.kind,
        attempt: job.attempt,
        token,
        max_attempts: job.max_attempts,
        priority: job.priority,
        lane: Arc::from("inline"),
        pool: store.pool().clone(),
        data: data.clone(),
        ops: ops.clone(),
        queue: Arc::from(queue.as_str()),
        traceparent: job.traceparent.as_deref().map(Arc::from),
        // Inline runs cannot be cancelled: the sender is gone, `cancelled()` never fires.
        cancel: tokio::sync::watch::channel(false).1,
    };
    let timeout = job
        .timeout_ms
        .map(|ms| Duration::from_millis(ms.max(1) as u64))
        .or(reg.timeout)
        .unwrap_or(Duration::from_secs(300));
    let span = process_span(RunSpan {
        queue: &queue,
        id,
        kind: reg.kind,
        attempt: job.attempt,
        priority: job.priority,
        lane: "inline",
        link: job.traceparent.as_deref(),
    });
    let run = AssertUnwindSafe(reg.runner.run(&job.args, ctx))
        .catch_unwind()
        .instrument(span);
    let result = match tokio::time::timeout(timeout, run).await {
        Ok(Ok(answer)) => crate::job::run_result(answer),
        Ok(Err(payload)) => RunResult::panicked(&*payload),
        Err(_) => RunResult::Failed {
            error: "timed out".into(),
            cause: FailureCause::Timeout,
        },
    };
    let action = decide(result, job.attempt, job.max_attempts, &Backoff::RETRY);
    let ran = Ran::of(&action);
    store
        .write_outcomes(
            &[OutcomeRow {
                id,
                token,
                action,
                labels: None,
            }],
            true,
        )
        .await?;
    Ok(ran)
}

//! Operator functions on a plain connection, without a running engine: what the `pglane`
//! command-line tool calls, and what an admin page or a script can call too.
//!
//! Each function takes any `tokio_postgres` client (a [`Client`](tokio_postgres::Client),
//! a transaction, or a pooled connection) and the schema name, which is validated before
//! it is put into any statement. The caller owns the connection and its timeouts (for
//! example [`set_statement_timeout`]). The statements themselves live in the store, like
//! every statement pglane runs.
//!
//! ```no_run
//! # async fn f(client: &tokio_postgres::Client) -> pglane::Result<()> {
//! use pglane::admin::{self, JobState};
//! admin::ensure_migrated(client, "pglane").await?;
//! for job in admin::list(client, "pglane", Some(JobState::Failed), 20).await? {
//!     println!("{} {} {:?}", job.id, job.kind, job.last_error);
//! }
//! # Ok(()) }
//! ```

use std::fmt;
use std::str::FromStr;
use std::time::{Duration, SystemTime};

use tokio_postgres::GenericClient;

use crate::error::Result;
use crate::migrate::{channel_for, SCHEMA_VERSION};
use crate::stats::StateCounts;
use crate::store::operator;

/// A job's state as operators see it: `available` jobs whose `run_at` is still ahead are
/// reported as [`Scheduled`](JobState::Scheduled).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum JobState {
    /// Due now, waiting for a worker.
    Available,
    /// Waiting for its `run_at` (scheduled, snoozed, or backing off before a retry).
    Scheduled,
    /// Running under a lease.
    Running,
    /// Finished successfully.
    Completed,
    /// Failed for good (attempts used up, or cancelled by its handler).
    Failed,
    /// Cancelled by a user, or because a job it depends on failed.
    Cancelled,
    /// Waiting for the jobs it depends on to complete.
    Waiting,
}

impl JobState {
    /// Every state, in lifecycle order.
    pub const ALL: [JobState; 7] = [
        JobState::Waiting,
        JobState::Available,
        JobState::Scheduled,
        JobState::Running,
        JobState::Completed,
        JobState::Failed,
        JobState::Cancelled,
    ];

    /// The lower-case name (`"available"`, …).
    pub fn as_str(self) -> &'static str {
        match self {
            JobState::Available => "available",
            JobState::Scheduled => "scheduled",
            JobState::Running => "running",
            JobState::Completed => "completed",
            JobState::Failed => "failed",
            JobState::Cancelled => "cancelled",
            JobState::Waiting => "waiting",
        }
    }
}

impl fmt::Display for JobState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A string that names no [`JobState`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "unknown job state `{0}`: use waiting, available, scheduled, running, completed, failed or cancelled"
)]
pub struct UnknownJobState(pub String);

impl FromStr for JobState {
    type Err = UnknownJobState;

    fn from_str(s: &str) -> std::result::Result<Self, Self::Err> {
        JobState::ALL
            .into_iter()
            .find(|st| st.as_str() == s)
            .ok_or_else(|| UnknownJobState(s.to_string()))
    }
}

/// One queue's jobs by state.
#[derive(Debug, Clone, Default, PartialEq)]
#[non_exhaustive]
pub struct QueueCounts {
    /// The queue's name.
    pub queue: String,
    /// Its jobs by state (finished ones while in retention).
    pub states: StateCounts,
    /// How long its oldest due job has been waiting for a worker.
    pub oldest_wait: Option<Duration>,
}

/// One job, as [`list`] reports it (args are left out: they may hold personal data).
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct JobSummary {
    /// The job's id.
    pub id: i64,
    /// Its kind.
    pub kind: String,
    /// Its queue.
    pub queue: String,
    /// Its priority (lower is more urgent).
    pub priority: i16,
    /// For a live job raised by its lane's aging, the priority it was enqueued with
    /// (see [`Lane::age_after`](crate::Lane::age_after)); `None` otherwise.
    pub base_priority: Option<i16>,
    /// Its state.
    pub state: JobState,
    /// Attempts started so far.
    pub attempt: i32,
    /// Attempts allowed.
    pub max_attempts: i32,
    /// When it is (or was) due.
    pub run_at: SystemTime,
    /// When it was enqueued.
    pub created_at: SystemTime,
    /// When it finished, for finished jobs.
    pub finished_at: Option<SystemTime>,
    /// The newest recorded error, if any.
    pub last_error: Option<String>,
    /// The jobs it depends on (flows): it runs once all of them completed.
    pub parents: Vec<i64>,
    /// The jobs that depend on it.
    pub children: Vec<i64>,
}

/// One job in full, as [`show`] reports it: its summary, args and error history.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct JobDetail {
    /// What [`list`] shows of it.
    pub summary: JobSummary,
    /// Its arguments, as stored (they may hold personal data: show them with care).
    pub args: serde_json::Value,
    /// When its current or last attempt started.
    pub started_at: Option<SystemTime>,
    /// Every recorded failure, oldest first.
    pub errors: Vec<AttemptError>,
    /// Its unique key, if it has one.
    pub unique_key: Option<String>,
    /// The worker that claimed it last.
    pub worker_id: Option<String>,
    /// How often its lease expired and it was rescued.
    pub rescues: i32,
}

/// One recorded failure of a job.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct AttemptError {
    /// The attempt that failed (1 for the first).
    pub attempt: i32,
    /// When it was recorded (database clock).
    pub at: Option<SystemTime>,
    /// The error text (truncated to [`MAX_ERROR_BYTES`](crate::MAX_ERROR_BYTES)).
    pub error: String,
    /// What ended the attempt: `error`, `panic`, `timeout`, `cancel`, `rescue`…
    pub cause: Option<String>,
}

/// The database the `pglane` tool (and pglane's examples, tests and benchmarks) use when
/// `DATABASE_URL` is not set.
pub const DEFAULT_DATABASE_URL: &str = "postgres://postgres@127.0.0.1:5432/test";

/// Fails with [`Error::NotMigrated`](crate::Error::NotMigrated) unless `schema` holds
/// every migration this build needs, or with
/// [`Error::SchemaTooNew`](crate::Error::SchemaTooNew) if a newer migration does not
/// allow this build (see the README's "Deploying and upgrading").
pub async fn ensure_migrated<C: GenericClient>(client: &C, schema: &str) -> Result<()> {
    channel_for(schema)?;
    let applied = operator::applied_migrations(client, schema).await?;
    crate::migrate::fit_of(&applied).into_result(schema, SCHEMA_VERSION)
}

/// Jobs of every queue by state, sorted by queue. Reads the tables directly, so it works
/// whether or not any engine is running.
pub async fn queue_counts<C: GenericClient>(client: &C, schema: &str) -> Result<Vec<QueueCounts>> {
    channel_for(schema)?;
    Ok(per_queue(operator::queue_counts(client, schema).await?))
}

/// Folds (queue, state) counts, sorted by queue, into one entry per queue.
fn per_queue(rows: Vec<operator::QueueStateCount>) -> Vec<QueueCounts> {
    let mut out: Vec<QueueCounts> = Vec::new();
    for row in rows {
        if out.last().map(|q| &q.queue) != Some(&row.queue) {
            out.push(QueueCounts {
                queue: row.queue,
                ..Default::default()
            });
        }
        // INVARIANT: just pushed if it was empty.
        let q = out.last_mut().expect("a queue entry");
        let n = row.jobs;
        match row.state.parse() {
            Ok(JobState::Available) => q.states.available += n,
            Ok(JobState::Scheduled) => q.states.scheduled += n,
            Ok(JobState::Running) => q.states.running += n,
            Ok(JobState::Completed) => q.states.completed += n,
            Ok(JobState::Failed) => q.states.failed += n,
            Ok(JobState::Cancelled) => q.states.cancelled += n,
            Ok(JobState::Waiting) => q.states.waiting_on_parents += n,
            Err(_) => {}
        }
        if let Some(s) = row.oldest_wait_s {
            q.oldest_wait = Some(Duration::from_secs_f64(s.max(0.0)));
        }
    }
    out
}

/// Up to `limit` jobs, newest first, live and finished alike; only those in `state` if
/// given.
pub async fn list<C: GenericClient>(
    client: &C,
    schema: &str,
    state: Option<JobState>,
    limit: i64,
) -> Result<Vec<JobSummary>> {
    channel_for(schema)?;
    let state = state.map(JobState::as_str);
    let jobs = operator::list_jobs(client, schema, state, limit.max(0)).await?;
    Ok(jobs.into_iter().map(summary).collect())
}

fn summary(j: operator::ListedJob) -> JobSummary {
    JobSummary {
        id: j.id,
        kind: j.kind,
        queue: j.queue,
        priority: j.priority,
        // The tables' CHECK constraints admit only known states; a hand-edited
        // schema is reported as failed rather than panicking here.
        state: j.state.parse().unwrap_or(JobState::Failed),
        attempt: j.attempt,
        max_attempts: j.max_attempts,
        run_at: j.run_at,
        created_at: j.created_at,
        finished_at: j.finished_at,
        last_error: j.last_error,
        base_priority: j.base_priority,
        parents: j.parents,
        children: j.children,
    }
}

/// One job with its args and error history, live or finished; `None` when no job has
/// this id (it never existed, or was pruned).
pub async fn show<C: GenericClient>(
    client: &C,
    schema: &str,
    id: i64,
) -> Result<Option<JobDetail>> {
    channel_for(schema)?;
    let Some(shown) = operator::show_job(client, schema, id).await? else {
        return Ok(None);
    };
    let errors = shown
        .errors
        .as_array()
        .map(|list| {
            list.iter()
                .enumerate()
                .map(|(i, e)| AttemptError {
                    attempt: e
                        .get("attempt")
                        .and_then(|a| a.as_i64())
                        .and_then(|a| i32::try_from(a).ok())
                        .unwrap_or(0),
                    at: shown.error_times.get(i).copied().flatten(),
                    error: e
                        .get("error")
                        .and_then(|t| t.as_str())
                        .unwrap_or_default()
                        .to_string(),
                    cause: e.get("cause").and_then(|c| c.as_str()).map(str::to_string),
                })
                .collect()
        })
        .unwrap_or_default();
    Ok(Some(JobDetail {
        summary: summary(shown.job),
        args: shown.args,
        started_at: shown.started_at,
        errors,
        unique_key: shown.unique_key,
        worker_id: shown.worker_id,
        rescues: shown.rescues,
    }))
}

/// Puts a failed or cancelled job back to run now with fresh attempts (keeping its id and
/// error history) and wakes the workers. Returns whether such a job was found. Same as
/// [`Engine::retry`](crate::Engine::retry), without an engine.
pub async fn retry<C: GenericClient>(client: &C, schema: &str, id: i64) -> Result<bool> {
    let channel = channel_for(schema)?;
    operator::retry_finished(client, schema, &channel, id).await
}

/// Every periodic job stored in the schema: definition, policy, whether a running
/// engine declares it, last and next run. What `pglane schedules` prints.
pub async fn schedules<C: GenericClient>(
    client: &C,
    schema: &str,
) -> Result<Vec<crate::ScheduleStats>> {
    channel_for(schema)?;
    let list = crate::store::schedules::list(client, schema).await?;
    Ok(list.into_iter().map(Into::into).collect())
}

/// Cancels a job, running or not, in whatever process it runs: same as
/// [`Engine::cancel`](crate::Engine::cancel), without an engine. `by` says who asked
/// (recorded with `reason` in the job's history); empty means the database user.
/// A finished or unknown job is [`Error::NotCancellable`](crate::Error::NotCancellable).
pub async fn cancel<C: GenericClient>(
    client: &C,
    schema: &str,
    id: i64,
    reason: Option<&str>,
    by: &str,
) -> Result<crate::CancelOutcome> {
    channel_for(schema)?;
    operator::cancel(client, schema, id, reason, by).await
}

/// Deletes finished jobs (completed, failed and cancelled) that finished more than
/// `older_than` ago, in batches of 5,000 so no statement holds locks for long. Returns
/// how many were deleted. Engines also prune on their own, by their retention settings.
pub async fn prune<C: GenericClient>(
    client: &C,
    schema: &str,
    older_than: Duration,
) -> Result<u64> {
    channel_for(schema)?;
    operator::prune(client, schema, older_than).await
}

/// Bounds every later statement on `client`'s session by `timeout` (rounded up to whole
/// milliseconds; zero turns the limit off), so a stuck server or a lock wait cannot hang
/// an operator's command. Lasts for the session, like `SET statement_timeout`.
pub async fn set_statement_timeout<C: GenericClient>(client: &C, timeout: Duration) -> Result<()> {
    operator::set_statement_timeout(client, timeout).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn states_round_trip_through_their_names() {
        for st in JobState::ALL {
            assert_eq!(st.as_str().parse::<JobState>(), Ok(st));
            assert_eq!(st.to_string(), st.as_str());
        }
        let e = "done".parse::<JobState>().unwrap_err();
        assert!(e.to_string().contains("completed"));
    }

    #[test]
    fn counts_fold_into_one_entry_per_queue() {
        let row =
            |queue: &str, state: &str, jobs: i64, wait: Option<f64>| operator::QueueStateCount {
                queue: queue.into(),
                state: state.into(),
                jobs,
                oldest_wait_s: wait,
            };
        let queues = per_queue(vec![
            row("a", "available", 3, Some(2.5)),
            row("a", "completed", 7, None),
            row("a", "scheduled", 1, None),
            row("b", "failed", 2, None),
            row("b", "running", 4, Some(-0.1)),
        ]);
        assert_eq!(queues.len(), 2);
        assert_eq!(queues[0].queue, "a");
        assert_eq!(
            (
                queues[0].states.available,
                queues[0].states.completed,
                queues[0].states.scheduled
            ),
            (3, 7, 1)
        );
        assert_eq!(queues[0].oldest_wait, Some(Duration::from_millis(2500)));
        assert_eq!((queues[1].states.failed, queues[1].states.running), (2, 4));
        // A clock step can make the wait negative: shown as zero, never a panic.
        assert_eq!(queues[1].oldest_wait, Some(Duration::ZERO));
    }
}

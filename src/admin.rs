//! Operator functions on a plain connection, without a running engine: what the `pglane`
//! command-line tool calls, and what an admin page or a script can call too.
//!
//! Each function takes any `tokio_postgres` client (a [`Client`](tokio_postgres::Client),
//! a transaction, or a pooled connection) and the schema name, which is validated before
//! it is put into any statement. The caller owns the connection and its timeouts (for
//! example `SET statement_timeout`).
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

use crate::error::{Error, Result};
use crate::migrate::{channel_for, SCHEMA_VERSION};
use crate::stats::StateCounts;
use crate::store::render;

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
    /// Cancelled by a user before it started.
    Cancelled,
}

impl JobState {
    /// Every state, in lifecycle order.
    pub const ALL: [JobState; 6] = [
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
    "unknown job state `{0}`: use available, scheduled, running, completed, failed or cancelled"
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
}

/// Fails with [`Error::NotMigrated`] unless `schema` is at the version this build needs.
pub async fn ensure_migrated<C: GenericClient>(client: &C, schema: &str) -> Result<()> {
    let channel = channel_for(schema)?;
    let sql = render(
        include_str!("store/sql/schema_version.sql"),
        schema,
        &channel,
    );
    let found = match client.query_one(&sql, &[]).await {
        Ok(row) => row.get::<_, i32>(0),
        // undefined_table / invalid_schema_name: never migrated.
        Err(e) if matches!(e.code().map(|c| c.code()), Some("42P01") | Some("3F000")) => 0,
        Err(e) => return Err(e.into()),
    };
    if found == SCHEMA_VERSION {
        Ok(())
    } else {
        Err(Error::NotMigrated {
            schema: schema.to_string(),
            found,
            expected: SCHEMA_VERSION,
        })
    }
}

/// Jobs of every queue by state, sorted by queue. Reads the tables directly, so it works
/// whether or not any engine is running.
pub async fn queue_counts<C: GenericClient>(client: &C, schema: &str) -> Result<Vec<QueueCounts>> {
    let channel = channel_for(schema)?;
    let sql = render(include_str!("store/sql/queue_counts.sql"), schema, &channel);
    let mut out: Vec<QueueCounts> = Vec::new();
    for row in client.query(&sql, &[]).await? {
        let queue: String = row.try_get(0)?;
        if out.last().map(|q| &q.queue) != Some(&queue) {
            out.push(QueueCounts {
                queue,
                ..Default::default()
            });
        }
        // INVARIANT: just pushed if it was empty.
        let q = out.last_mut().expect("a queue entry");
        let n: i64 = row.try_get(2)?;
        match row.try_get::<_, String>(1)?.parse() {
            Ok(JobState::Available) => q.states.available += n,
            Ok(JobState::Scheduled) => q.states.scheduled += n,
            Ok(JobState::Running) => q.states.running += n,
            Ok(JobState::Completed) => q.states.completed += n,
            Ok(JobState::Failed) => q.states.failed += n,
            Ok(JobState::Cancelled) => q.states.cancelled += n,
            Err(_) => {}
        }
        if let Some(s) = row.try_get::<_, Option<f64>>(3)? {
            q.oldest_wait = Some(Duration::from_secs_f64(s.max(0.0)));
        }
    }
    Ok(out)
}

/// Up to `limit` jobs, newest first, live and finished alike; only those in `state` if
/// given.
pub async fn list<C: GenericClient>(
    client: &C,
    schema: &str,
    state: Option<JobState>,
    limit: i64,
) -> Result<Vec<JobSummary>> {
    let channel = channel_for(schema)?;
    let sql = render(include_str!("store/sql/list_jobs.sql"), schema, &channel);
    let state = state.map(JobState::as_str);
    let rows = client.query(&sql, &[&state, &limit.max(0)]).await?;
    rows.iter()
        .map(|r| {
            let state: String = r.try_get(4)?;
            Ok(JobSummary {
                id: r.try_get(0)?,
                kind: r.try_get(1)?,
                queue: r.try_get(2)?,
                priority: r.try_get(3)?,
                // The tables' CHECK constraints admit only known states; a hand-edited
                // schema is reported as failed rather than panicking here.
                state: state.parse().unwrap_or(JobState::Failed),
                attempt: r.try_get(5)?,
                max_attempts: r.try_get(6)?,
                run_at: r.try_get(7)?,
                created_at: r.try_get(8)?,
                finished_at: r.try_get(9)?,
                last_error: r.try_get(10)?,
            })
        })
        .collect()
}

/// Puts a failed or cancelled job back to run now with fresh attempts (keeping its id and
/// error history) and wakes the workers. Returns whether such a job was found. Same as
/// [`Engine::retry`](crate::Engine::retry), without an engine.
pub async fn retry<C: GenericClient>(client: &C, schema: &str, id: i64) -> Result<bool> {
    let channel = channel_for(schema)?;
    let sql = render(
        include_str!("store/sql/retry_finished.sql"),
        schema,
        &channel,
    );
    let found = !client.query(&sql, &[&id]).await?.is_empty();
    if found {
        let notify = render(include_str!("store/sql/notify.sql"), schema, &channel);
        client.query(&notify, &[]).await?;
    }
    Ok(found)
}

/// Cancels a job that has not started yet. Returns whether it was cancelled (`false` if
/// it is running, finished, or unknown). Same as [`Engine::cancel`](crate::Engine::cancel),
/// without an engine.
pub async fn cancel<C: GenericClient>(client: &C, schema: &str, id: i64) -> Result<bool> {
    let channel = channel_for(schema)?;
    let sql = render(include_str!("store/sql/cancel.sql"), schema, &channel);
    Ok(!client.query(&sql, &[&id]).await?.is_empty())
}

/// Deletes finished jobs (completed, failed and cancelled) that finished more than
/// `older_than` ago, in batches of 5,000 so no statement holds locks for long. Returns
/// how many were deleted. Engines also prune on their own, by their retention settings.
pub async fn prune<C: GenericClient>(
    client: &C,
    schema: &str,
    older_than: Duration,
) -> Result<u64> {
    const BATCH: i64 = 5000;
    let channel = channel_for(schema)?;
    let sql = render(include_str!("store/sql/prune.sql"), schema, &channel);
    let secs = older_than.as_secs_f64();
    let mut total = 0;
    loop {
        let n = client.execute(&sql, &[&secs, &secs, &BATCH]).await?;
        total += n;
        if n < BATCH as u64 {
            return Ok(total);
        }
    }
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
    fn statements_render_without_markers() {
        for sql in [
            include_str!("store/sql/queue_counts.sql"),
            include_str!("store/sql/list_jobs.sql"),
            include_str!("store/sql/notify.sql"),
        ] {
            let r = render(sql, "s1", "s1_jobs");
            assert!(!r.contains("TEMPLATE") && !r.contains("{{"), "{r}");
        }
    }
}

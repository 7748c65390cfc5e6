//! Operators' statements, on any client the caller owns (a `Client`, a transaction, a
//! pooled connection): what [`admin`](crate::admin) and the `pglane` tool run, without an
//! engine. The caller validates the schema name and owns the connection's timeouts.
//!
//! Rows come back as plain records; `admin` turns them into its public types.

use std::time::{Duration, SystemTime};

use tokio_postgres::{GenericClient, Row};

use super::prune::prune_finished;
use super::render;
use crate::error::Result;
use crate::schema_fit::Applied;

/// One queue's jobs in one state (`queue_counts.sql`).
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct QueueStateCount {
    pub(crate) queue: String,
    /// A lower-case state name; `scheduled` for available jobs not yet due.
    pub(crate) state: String,
    pub(crate) jobs: i64,
    /// Seconds the oldest due job has waited (live states only).
    pub(crate) oldest_wait_s: Option<f64>,
}

/// One job as operators list it (`list_jobs.sql`).
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct ListedJob {
    pub(crate) id: i64,
    pub(crate) kind: String,
    pub(crate) queue: String,
    pub(crate) priority: i16,
    /// A lower-case state name; `scheduled` for available jobs not yet due.
    pub(crate) state: String,
    pub(crate) attempt: i32,
    pub(crate) max_attempts: i32,
    pub(crate) run_at: SystemTime,
    pub(crate) created_at: SystemTime,
    pub(crate) finished_at: Option<SystemTime>,
    pub(crate) last_error: Option<String>,
    pub(crate) base_priority: Option<i16>,
}

/// One job in full (`show_job.sql`).
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct ShownJob {
    pub(crate) job: ListedJob,
    pub(crate) started_at: Option<SystemTime>,
    pub(crate) args: serde_json::Value,
    /// The `errors` array as stored: `{attempt, at, error, cause}` objects.
    pub(crate) errors: serde_json::Value,
    /// Each error's `at`, as a timestamp.
    pub(crate) error_times: Vec<Option<SystemTime>>,
    pub(crate) unique_key: Option<String>,
    pub(crate) worker_id: Option<String>,
    pub(crate) rescues: i32,
}

/// The applied migrations from the answer to `schema_version.sql`: none when the
/// schema or its migration record does not exist (never migrated).
pub(crate) fn applied_found(
    answer: std::result::Result<Vec<Row>, tokio_postgres::Error>,
) -> Result<Vec<Applied>> {
    match answer {
        Ok(rows) => rows
            .iter()
            .map(|r| Ok((r.try_get(0)?, r.try_get(1)?)))
            .collect(),
        // undefined_table / invalid_schema_name: never migrated.
        Err(e) if matches!(e.code().map(|c| c.code()), Some("42P01") | Some("3F000")) => {
            Ok(Vec::new())
        }
        Err(e) => Err(e.into()),
    }
}

/// The migrations applied to the schema (none if it has never been migrated).
pub(crate) async fn applied_migrations<C: GenericClient>(
    client: &C,
    schema: &str,
) -> Result<Vec<Applied>> {
    let sql = render(include_str!("sql/schema_version.sql"), schema, "");
    applied_found(client.query(&sql, &[]).await)
}

/// Jobs of every queue by state, sorted by queue then state.
pub(crate) async fn queue_counts<C: GenericClient>(
    client: &C,
    schema: &str,
) -> Result<Vec<QueueStateCount>> {
    let sql = render(include_str!("sql/queue_counts.sql"), schema, "");
    let rows = client.query(&sql, &[]).await?;
    rows.iter()
        .map(|r| {
            Ok(QueueStateCount {
                queue: r.try_get(0)?,
                state: r.try_get(1)?,
                jobs: r.try_get(2)?,
                oldest_wait_s: r.try_get(3)?,
            })
        })
        .collect()
}

/// Up to `limit` jobs, newest first, only those in `state` if given.
pub(crate) async fn list_jobs<C: GenericClient>(
    client: &C,
    schema: &str,
    state: Option<&str>,
    limit: i64,
) -> Result<Vec<ListedJob>> {
    let sql = render(include_str!("sql/list_jobs.sql"), schema, "");
    let rows = client.query(&sql, &[&state, &limit]).await?;
    rows.iter()
        .map(|r| {
            Ok(ListedJob {
                id: r.try_get(0)?,
                kind: r.try_get(1)?,
                queue: r.try_get(2)?,
                priority: r.try_get(3)?,
                state: r.try_get(4)?,
                attempt: r.try_get(5)?,
                max_attempts: r.try_get(6)?,
                run_at: r.try_get(7)?,
                created_at: r.try_get(8)?,
                finished_at: r.try_get(9)?,
                last_error: r.try_get(10)?,
                base_priority: r.try_get(11)?,
            })
        })
        .collect()
}

/// One job, live or finished, or `None` if no job has this id (never had, or pruned).
pub(crate) async fn show_job<C: GenericClient>(
    client: &C,
    schema: &str,
    id: i64,
) -> Result<Option<ShownJob>> {
    let sql = render(include_str!("sql/show_job.sql"), schema, "");
    let Some(r) = client.query_opt(&sql, &[&id]).await? else {
        return Ok(None);
    };
    let errors: serde_json::Value = r.try_get(12)?;
    Ok(Some(ShownJob {
        job: ListedJob {
            id: r.try_get(0)?,
            kind: r.try_get(1)?,
            queue: r.try_get(2)?,
            priority: r.try_get(3)?,
            state: r.try_get(4)?,
            attempt: r.try_get(5)?,
            max_attempts: r.try_get(6)?,
            run_at: r.try_get(7)?,
            created_at: r.try_get(8)?,
            finished_at: r.try_get(10)?,
            last_error: errors
                .as_array()
                .and_then(|a| a.last())
                .and_then(|e| e.get("error"))
                .and_then(|e| e.as_str())
                .map(str::to_string),
            base_priority: r.try_get(17)?,
        },
        started_at: r.try_get(9)?,
        args: r.try_get(11)?,
        errors,
        error_times: r.try_get(13)?,
        unique_key: r.try_get(14)?,
        worker_id: r.try_get(15)?,
        rescues: r.try_get(16)?,
    }))
}

/// Puts a failed or cancelled job back to run now and, if one was found, wakes every
/// lane listening on `channel`. Returns whether it was found.
pub(crate) async fn retry_finished<C: GenericClient>(
    client: &C,
    schema: &str,
    channel: &str,
    id: i64,
) -> Result<bool> {
    let sql = render(include_str!("sql/retry_finished.sql"), schema, channel);
    let found = !client.query(&sql, &[&id]).await?.is_empty();
    if found {
        let notify = render(include_str!("sql/notify.sql"), schema, channel);
        client.query(&notify, &[]).await?;
    }
    Ok(found)
}

/// Cancels a job (see `cancel()` in migration 5): at once if it has not started, by a
/// durable request and a notification to its worker if it is running.
pub(crate) async fn cancel<C: GenericClient>(
    client: &C,
    schema: &str,
    id: i64,
    reason: Option<&str>,
    by: &str,
) -> Result<crate::cancel::CancelOutcome> {
    let sql = render(include_str!("sql/cancel.sql"), schema, "");
    let answer: String = client
        .query_one(&sql, &[&id, &reason, &by])
        .await
        .map_err(|e| crate::cancel::refusal(id, e.into()))?
        .get(0);
    crate::cancel::CancelOutcome::parse(&answer)
}

/// Deletes every finished job that finished more than `older_than` ago, whatever its
/// state. Returns how many were deleted.
pub(crate) async fn prune<C: GenericClient>(
    client: &C,
    schema: &str,
    older_than: Duration,
) -> Result<u64> {
    let sql = render(include_str!("sql/prune.sql"), schema, "");
    Ok(prune_finished(client, &sql, older_than, older_than, None, None).await?)
}

/// Sets the session's statement timeout: `timeout` rounded up to whole milliseconds,
/// zero turning it off (as in PostgreSQL).
pub(crate) async fn set_statement_timeout<C: GenericClient>(
    client: &C,
    timeout: Duration,
) -> Result<()> {
    let value = format!("{}ms", timeout_ms(timeout));
    client
        .query(include_str!("sql/statement_timeout.sql"), &[&value])
        .await?;
    Ok(())
}

/// `statement_timeout` in milliseconds: rounded up, so a tiny timeout never becomes 0
/// (which PostgreSQL reads as "no timeout").
fn timeout_ms(timeout: Duration) -> u128 {
    let ms = timeout.as_millis();
    if Duration::from_millis(ms as u64) < timeout {
        ms + 1
    } else {
        ms
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statement_timeouts_round_up_to_milliseconds() {
        assert_eq!(timeout_ms(Duration::ZERO), 0);
        assert_eq!(timeout_ms(Duration::from_micros(1)), 1);
        assert_eq!(timeout_ms(Duration::from_secs(60)), 60_000);
        assert_eq!(timeout_ms(Duration::from_micros(1_500)), 2);
    }
}

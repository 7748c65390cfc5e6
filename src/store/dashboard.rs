//! The dashboard's statements, on a client the caller owns (a pooled connection): job
//! lists and counts under a filter, one job in full, bulk actions, enqueue by hand, the
//! overview's figures, engines and lane controls. The caller validates the schema name
//! and every filter value; rows come back as plain records.

use std::time::SystemTime;

use tokio_postgres::types::ToSql;
use tokio_postgres::GenericClient;

use super::operator::ListedJob;
use super::render;
use crate::error::Result;

/// A filter's values as the statements take them (`None`: any).
#[derive(Debug, Clone, Default, PartialEq)]
pub(crate) struct FilterParams {
    pub(crate) state: Option<String>,
    pub(crate) kind: Option<String>,
    pub(crate) queue: Option<String>,
    pub(crate) priority_min: Option<i32>,
    pub(crate) priority_max: Option<i32>,
    pub(crate) id: Option<i64>,
    pub(crate) unique_key: Option<String>,
    pub(crate) args: Option<serde_json::Value>,
}

impl FilterParams {
    fn params(&self) -> [&(dyn ToSql + Sync); 8] {
        [
            &self.state,
            &self.kind,
            &self.queue,
            &self.priority_min,
            &self.priority_max,
            &self.id,
            &self.unique_key,
            &self.args,
        ]
    }
}

/// Which tables a filter's jobs can be in: a state filter names one of them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Tables {
    /// `jobs`: waiting, available, scheduled and running jobs.
    Live,
    /// `jobs_finished`: completed, failed and cancelled jobs.
    Finished,
    /// Both (no state filter).
    Both,
}

impl Tables {
    /// The tables jobs in `state` (a `JobState` name, or any) can be in.
    pub(crate) fn for_state(state: Option<&str>) -> Tables {
        match state {
            None => Tables::Both,
            Some("completed" | "failed" | "cancelled") => Tables::Finished,
            Some(_) => Tables::Live,
        }
    }
}

/// Puts the source of `tables` where a list or count statement says
/// `/* SOURCE */jobs_any`: one table's branch, or the UNION ALL of both. Leaving out the
/// table a state filter cannot match keeps it from being walked at all (`state=failed`
/// walked 1M live rows before the first finished one: 0.13-0.4 s).
fn source(sql: &str, tables: Tables) -> String {
    let live = include_str!("sql/dash_source_live.sql");
    let finished = include_str!("sql/dash_source_finished.sql");
    let code = |s: &'static str| {
        s.lines()
            .filter(|l| !l.trim_start().starts_with("--"))
            .collect::<Vec<_>>()
            .join("\n")
    };
    let from = match tables {
        Tables::Live => code(live),
        Tables::Finished => code(finished),
        Tables::Both => format!("{}\nUNION ALL\n{}", code(live), code(finished)),
    };
    sql.replace("/* SOURCE */jobs_any", &format!("(\n{from}\n)"))
}

/// Where a page of the list starts: after this row.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub(crate) enum After {
    /// The first page.
    #[default]
    Start,
    /// Newest first: after this id.
    Id(i64),
    /// Most urgent first: after this (priority, run_at, id).
    Urgent(i16, SystemTime, i64),
}

fn listed(r: &tokio_postgres::Row) -> Result<ListedJob> {
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
        // The dashboard shows the current (possibly aged) priority.
        base_priority: None,
        // Nor flows' edges (`pglane list` and `show` show them).
        parents: Vec::new(),
        children: Vec::new(),
    })
}

/// One page of jobs matching `f`: newest first, or (with `urgent`) live jobs most urgent
/// first. `from_id` bounds a newest-first walk to ids from it up (the urgent order is
/// not bounded: it walks live jobs only).
pub(crate) async fn list<C: GenericClient>(
    client: &C,
    schema: &str,
    f: &FilterParams,
    urgent: bool,
    after: After,
    limit: i64,
    from_id: Option<i64>,
) -> Result<Vec<ListedJob>> {
    let mut params: Vec<&(dyn ToSql + Sync)> = f.params().to_vec();
    let rows = if urgent {
        let (p, at, id) = match after {
            After::Urgent(p, at, id) => (Some(i32::from(p)), Some(at), Some(id)),
            _ => (None, None, None),
        };
        let sql = render(include_str!("sql/dash_list_urgent.sql"), schema, "");
        params.extend([&p as &(dyn ToSql + Sync), &at, &id, &limit]);
        client.query(&sql, &params).await?
    } else {
        let id = match after {
            After::Id(id) => Some(id),
            _ => None,
        };
        let sql = source(
            include_str!("sql/dash_list_newest.sql"),
            Tables::for_state(f.state.as_deref()),
        );
        let sql = render(&sql, schema, "");
        params.extend([&id as &(dyn ToSql + Sync), &limit, &from_id]);
        client.query(&sql, &params).await?
    };
    rows.iter().map(listed).collect()
}

/// How many jobs match `f`, counting at most `cap` (and, with `from_id`, only ids from
/// it up).
pub(crate) async fn count<C: GenericClient>(
    client: &C,
    schema: &str,
    f: &FilterParams,
    cap: i64,
    from_id: Option<i64>,
) -> Result<i64> {
    let sql = source(
        include_str!("sql/dash_count.sql"),
        Tables::for_state(f.state.as_deref()),
    );
    let sql = render(&sql, schema, "");
    let mut params: Vec<&(dyn ToSql + Sync)> = f.params().to_vec();
    params.push(&cap);
    params.push(&from_id);
    Ok(client.query_one(&sql, &params).await?.try_get(0)?)
}

/// How many jobs match `f`, counting at most `cap`, if that takes at most `budget`
/// (`statement_timeout`); `None` if it would take longer. A filter matching few of
/// many rows reads the whole table to count them: 11M rows took seconds.
pub(crate) async fn count_within(
    conn: &mut super::Conn,
    schema: &str,
    f: &FilterParams,
    cap: i64,
    budget: std::time::Duration,
) -> Result<Option<i64>> {
    // A transaction of its own for the local timeout: dropped unfinished (a failed
    // count, or a request cut short), it rolls back and takes the setting with it.
    let tx = conn
        .client_mut()
        .build_transaction()
        .read_only(true)
        .start()
        .await?;
    tx.batch_execute(&format!(
        "SET LOCAL statement_timeout = {}",
        budget.as_millis().max(1)
    ))
    .await?;
    match count(&tx, schema, f, cap, None).await {
        Ok(n) => {
            tx.commit().await?;
            Ok(Some(n))
        }
        // 57014: canceled by the statement timeout.
        Err(e) if e.sqlstate() == Some("57014") => Ok(None),
        Err(e) => Err(e),
    }
}

/// The newest job id, live or finished (0 when there are none).
pub(crate) async fn newest_id<C: GenericClient>(client: &C, schema: &str) -> Result<i64> {
    let sql = render(include_str!("sql/dash_newest_id.sql"), schema, "");
    Ok(client.query_one(&sql, &[]).await?.try_get(0)?)
}

/// One job in full (`dash_job.sql`).
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct JobDetail {
    pub(crate) job: ListedJob,
    pub(crate) started_at: Option<SystemTime>,
    pub(crate) args_pretty: String,
    /// The `errors` array as JSON text.
    pub(crate) errors: String,
    pub(crate) worker_id: Option<String>,
    pub(crate) lease_until: Option<SystemTime>,
    pub(crate) unique_key: Option<String>,
    pub(crate) timeout_ms: Option<i32>,
    pub(crate) rescues: i32,
}

/// The job with this id, live or finished.
pub(crate) async fn job<C: GenericClient>(
    client: &C,
    schema: &str,
    id: i64,
) -> Result<Option<JobDetail>> {
    let sql = render(include_str!("sql/dash_job.sql"), schema, "");
    let Some(r) = client.query(&sql, &[&id]).await?.into_iter().next() else {
        return Ok(None);
    };
    Ok(Some(JobDetail {
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
            last_error: None,
            base_priority: None,
            parents: r.try_get(18)?,
            children: r.try_get(19)?,
        },
        started_at: r.try_get(9)?,
        args_pretty: r.try_get(11)?,
        errors: r.try_get(12)?,
        worker_id: r.try_get(13)?,
        lease_until: r.try_get(14)?,
        unique_key: r.try_get(15)?,
        timeout_ms: r.try_get(16)?,
        rescues: r.try_get(17)?,
    }))
}

/// A bulk action on a set of ids.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum BulkAction {
    Retry,
    Cancel,
    Delete,
    RunNow,
}

/// Applies `action` to the jobs of `ids` it applies to; returns how many changed. Wakes
/// the workers (one NOTIFY) when jobs became due.
pub(crate) async fn apply<C: GenericClient>(
    client: &C,
    schema: &str,
    channel: &str,
    action: BulkAction,
    ids: &[i64],
) -> Result<u64> {
    if ids.is_empty() {
        return Ok(0);
    }
    let file = match action {
        BulkAction::Retry => include_str!("sql/dash_retry_many.sql"),
        BulkAction::Cancel => include_str!("sql/dash_cancel_many.sql"),
        BulkAction::Delete => include_str!("sql/dash_delete_finished.sql"),
        BulkAction::RunNow => include_str!("sql/dash_run_now.sql"),
    };
    let sql = render(file, schema, channel);
    let ids = ids.to_vec();
    let by = "dashboard";
    let run = |ids: Vec<i64>| {
        let sql = &sql;
        async move {
            if action == BulkAction::Cancel {
                client.query(sql.as_str(), &[&ids, &by]).await
            } else {
                client.query(sql.as_str(), &[&ids]).await
            }
        }
    };
    let changed = match run(ids.clone()).await {
        Ok(rows) => rows.len() as u64,
        // One job can fail the whole batch: a live unique key held by a job to retry, a
        // job to cancel that finished meanwhile. Go one by one, so it does not block the
        // others.
        Err(e)
            if matches!(
                (action, e.code().map(|c| c.code())),
                (BulkAction::Retry, Some("23505")) | (BulkAction::Cancel, Some("55000" | "P0002"))
            ) =>
        {
            let mut n = 0;
            for id in &ids {
                if let Ok(rows) = run(vec![*id]).await {
                    n += rows.len() as u64;
                }
            }
            n
        }
        Err(e) => return Err(e.into()),
    };
    if changed > 0 && matches!(action, BulkAction::Retry | BulkAction::RunNow) {
        let notify = render(include_str!("sql/notify.sql"), schema, channel);
        client.query(&notify, &[]).await?;
    }
    Ok(changed)
}

/// Enqueues one job through the schema's SQL `enqueue` function; returns its id.
pub(crate) async fn enqueue<C: GenericClient>(
    client: &C,
    schema: &str,
    kind: &str,
    args: &serde_json::Value,
    priority: i32,
    queue: &str,
    delay_s: f64,
) -> Result<i64> {
    let sql = render(include_str!("sql/dash_enqueue.sql"), schema, "");
    let row = client
        .query_one(&sql, &[&kind, args, &priority, &queue, &delay_s])
        .await?;
    Ok(row.try_get(0)?)
}

/// Rows and pages of the job tables from the catalog.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub(crate) struct TableSizes {
    pub(crate) live_pages: i64,
    pub(crate) live_rows: f64,
    pub(crate) finished_pages: i64,
    pub(crate) finished_rows: f64,
}

pub(crate) async fn table_sizes<C: GenericClient>(client: &C, schema: &str) -> Result<TableSizes> {
    let rows = client
        .query(include_str!("sql/dash_table_sizes.sql"), &[&schema])
        .await?;
    let mut out = TableSizes::default();
    for r in rows {
        let name: String = r.try_get(0)?;
        let (pages, tuples): (i64, f64) = (r.try_get(1)?, r.try_get(2)?);
        if name == "jobs" {
            (out.live_pages, out.live_rows) = (pages, tuples);
        } else {
            (out.finished_pages, out.finished_rows) = (pages, tuples);
        }
    }
    Ok(out)
}

/// Estimated jobs per (table, state) from the planner's statistics.
pub(crate) async fn state_estimates<C: GenericClient>(
    client: &C,
    schema: &str,
) -> Result<Vec<(String, String, f64)>> {
    let rows = client
        .query(include_str!("sql/dash_state_estimates.sql"), &[&schema])
        .await?;
    rows.iter()
        .map(|r| Ok((r.try_get(0)?, r.try_get(1)?, r.try_get(2)?)))
        .collect()
}

/// Due jobs waiting in a priority range (counted up to `cap`) and the oldest wait among
/// those counted, in seconds.
pub(crate) async fn lane_waiting<C: GenericClient>(
    client: &C,
    schema: &str,
    lo: i16,
    hi: i16,
    cap: i64,
) -> Result<(i64, Option<f64>)> {
    let sql = render(include_str!("sql/dash_lane_waiting.sql"), schema, "");
    let r = client
        .query_one(&sql, &[&i32::from(lo), &i32::from(hi), &cap])
        .await?;
    Ok((r.try_get(0)?, r.try_get(1)?))
}

/// One lane's minute of the last hour (`dash_throughput.sql`).
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct LaneMinute {
    pub(crate) lane: String,
    /// The minute, as Unix seconds.
    pub(crate) minute: f64,
    pub(crate) completed: i64,
    pub(crate) failed: i64,
    pub(crate) wait_p50_s: Option<f64>,
    pub(crate) wait_p99_s: Option<f64>,
}

/// Per lane (name, lowest, highest priority) and minute of the last hour: throughput and
/// wait percentiles.
pub(crate) async fn throughput<C: GenericClient>(
    client: &C,
    schema: &str,
    lanes: &[(String, i16, i16)],
) -> Result<Vec<LaneMinute>> {
    let sql = render(include_str!("sql/dash_throughput.sql"), schema, "");
    let names: Vec<&str> = lanes.iter().map(|l| l.0.as_str()).collect();
    let los: Vec<i32> = lanes.iter().map(|l| i32::from(l.1)).collect();
    let his: Vec<i32> = lanes.iter().map(|l| i32::from(l.2)).collect();
    let rows = client.query(&sql, &[&names, &los, &his]).await?;
    rows.iter()
        .map(|r| {
            Ok(LaneMinute {
                lane: r.try_get(0)?,
                minute: r.try_get(1)?,
                completed: r.try_get(2)?,
                failed: r.try_get(3)?,
                wait_p50_s: r.try_get(4)?,
                wait_p99_s: r.try_get(5)?,
            })
        })
        .collect()
}

/// An engine alive now, as its last heartbeat described it.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct EngineRow {
    pub(crate) worker_id: String,
    pub(crate) queue: String,
    pub(crate) started_at: SystemTime,
    pub(crate) seen_at: SystemTime,
    pub(crate) listener: String,
    pub(crate) database_ok: bool,
    /// Its lanes as JSON text (see migration 6).
    pub(crate) lanes: String,
}

pub(crate) async fn engines<C: GenericClient>(client: &C, schema: &str) -> Result<Vec<EngineRow>> {
    let sql = render(include_str!("sql/dash_engines.sql"), schema, "");
    let rows = client.query(&sql, &[]).await?;
    rows.iter()
        .map(|r| {
            Ok(EngineRow {
                worker_id: r.try_get(0)?,
                queue: r.try_get(1)?,
                started_at: r.try_get(2)?,
                seen_at: r.try_get(3)?,
                listener: r.try_get(4)?,
                database_ok: r.try_get(5)?,
                lanes: r.try_get(6)?,
            })
        })
        .collect()
}

/// A lane's control as operators set it.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct LaneControlRow {
    pub(crate) queue: String,
    pub(crate) lane: String,
    pub(crate) paused: bool,
    pub(crate) concurrency: Option<i32>,
    pub(crate) version: i64,
    pub(crate) updated_at: SystemTime,
    pub(crate) updated_by: Option<String>,
}

pub(crate) async fn lane_controls<C: GenericClient>(
    client: &C,
    schema: &str,
) -> Result<Vec<LaneControlRow>> {
    let sql = render(include_str!("sql/dash_lane_controls.sql"), schema, "");
    let rows = client.query(&sql, &[]).await?;
    rows.iter()
        .map(|r| {
            Ok(LaneControlRow {
                queue: r.try_get(0)?,
                lane: r.try_get(1)?,
                paused: r.try_get(2)?,
                concurrency: r.try_get(3)?,
                version: r.try_get(4)?,
                updated_at: r.try_get(5)?,
                updated_by: r.try_get(6)?,
            })
        })
        .collect()
}

/// Sets a lane's control (pause or resume, concurrency; `None` keeps each); returns the
/// new version.
pub(crate) async fn set_lane_control<C: GenericClient>(
    client: &C,
    schema: &str,
    queue: &str,
    lane: &str,
    paused: Option<bool>,
    concurrency: Option<i32>,
    by: &str,
) -> Result<i64> {
    let sql = render(include_str!("sql/dash_set_lane_control.sql"), schema, "");
    let row = client
        .query_one(&sql, &[&queue, &lane, &paused, &concurrency, &by])
        .await?;
    Ok(row.try_get(0)?)
}

/// Enqueues schedule `name`'s job now; `None` if there is no such schedule.
pub(crate) async fn run_schedule_now<C: GenericClient>(
    client: &C,
    schema: &str,
    name: &str,
) -> Result<Option<i64>> {
    let sql = render(include_str!("sql/dash_schedule_run_now.sql"), schema, "");
    match client.query(&sql, &[&name]).await?.first() {
        Some(r) => Ok(Some(r.try_get(0)?)),
        None => Ok(None),
    }
}

/// Turns the current transaction's settings to the overview's (`SET LOCAL`).
pub(crate) async fn overview_settings<C: GenericClient>(client: &C) -> Result<()> {
    client
        .query(include_str!("sql/dash_overview_settings.sql"), &[])
        .await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_state_names_the_table_its_jobs_are_in() {
        assert_eq!(Tables::for_state(None), Tables::Both);
        for s in ["completed", "failed", "cancelled"] {
            assert_eq!(Tables::for_state(Some(s)), Tables::Finished, "{s}");
        }
        for s in ["waiting", "available", "scheduled", "running"] {
            assert_eq!(Tables::for_state(Some(s)), Tables::Live, "{s}");
        }
        // Every state is placed: a new one must be added above.
        assert_eq!(crate::admin::JobState::ALL.len(), 7);
    }

    #[test]
    fn the_source_is_one_table_or_both_with_no_marker_left() {
        for file in [
            include_str!("sql/dash_list_newest.sql"),
            include_str!("sql/dash_count.sql"),
        ] {
            let both = render(&source(file, Tables::Both), "s1", "");
            assert!(both.contains("\"s1\".jobs\n") && both.contains("\"s1\".jobs_finished"));
            assert_eq!(both.matches("UNION ALL").count(), 1);
            let live = render(&source(file, Tables::Live), "s1", "");
            assert!(live.contains("\"s1\".jobs\n") && !live.contains("jobs_finished"));
            let fin = render(&source(file, Tables::Finished), "s1", "");
            assert!(fin.contains("\"s1\".jobs_finished") && !fin.contains("\"s1\".jobs\n"));
            for sql in [both, live, fin] {
                assert!(
                    !sql.contains("SOURCE") && !sql.contains("jobs_any"),
                    "{sql}"
                );
                assert!(!sql.contains("UNION ALL\nWHERE"), "branches carry no WHERE");
            }
        }
    }
}

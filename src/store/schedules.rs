//! Schedule statements: declaring a schedule, keeping it active, loading what a pass
//! needs, and firing ticks (the compare-and-set that inserts a tick's job). Part of the
//! store (the only place that runs SQL), split out by responsibility.

use std::time::Duration;

use chrono::{DateTime, Utc};
use tokio_postgres::GenericClient;

use super::{render, Store};
use crate::enqueue::NewJob;
use crate::error::Result;

/// A validated schedule as an engine declares it (built by `schedule::Schedule`).
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct ScheduleSpec {
    pub(crate) name: String,
    pub(crate) cron: String,
    pub(crate) time_zone: String,
    pub(crate) job: NewJob,
    /// The missed-tick policy's stored name (`skip`, `coalesce`, `catch_up`).
    pub(crate) missed: &'static str,
    pub(crate) catch_up_max: i32,
    pub(crate) grace_ms: i32,
    pub(crate) run_on_start: bool,
}

/// What a pass needs of one stored schedule.
#[derive(Debug, Clone)]
pub(crate) struct StoredSchedule {
    pub(crate) name: String,
    pub(crate) cron: String,
    pub(crate) time_zone: String,
    /// The stored missed-tick policy and its catch-up bound.
    pub(crate) missed: String,
    pub(crate) catch_up_max: i32,
    pub(crate) grace: Duration,
    pub(crate) declared_at: DateTime<Utc>,
    pub(crate) last_tick: DateTime<Utc>,
    /// The database clock when loaded.
    pub(crate) now: DateTime<Utc>,
}

/// One schedule as stats and `pglane schedules` show it.
#[derive(Debug, Clone)]
pub(crate) struct ListedSchedule {
    pub(crate) name: String,
    pub(crate) cron: String,
    pub(crate) time_zone: String,
    pub(crate) kind: String,
    pub(crate) queue: String,
    pub(crate) priority: i16,
    pub(crate) missed: String,
    pub(crate) catch_up_max: i32,
    pub(crate) active: bool,
    pub(crate) declared_at: DateTime<Utc>,
    pub(crate) declared_by: Option<String>,
    pub(crate) last_tick: DateTime<Utc>,
    pub(crate) last_run_at: Option<DateTime<Utc>>,
    pub(crate) runs: i64,
    pub(crate) skipped: i64,
    pub(crate) now: DateTime<Utc>,
}

/// Every schedule in `schema`, by name.
pub(crate) async fn list<C: GenericClient>(
    client: &C,
    schema: &str,
) -> Result<Vec<ListedSchedule>> {
    let sql = render(include_str!("sql/schedule_list.sql"), schema, "");
    let rows = client.query(&sql, &[]).await?;
    rows.iter()
        .map(|r| {
            Ok(ListedSchedule {
                name: r.try_get(0)?,
                cron: r.try_get(1)?,
                time_zone: r.try_get(2)?,
                kind: r.try_get(3)?,
                queue: r.try_get(4)?,
                priority: r.try_get(5)?,
                missed: r.try_get(6)?,
                catch_up_max: r.try_get(7)?,
                active: r.try_get(8)?,
                declared_at: r.try_get(9)?,
                declared_by: r.try_get(10)?,
                last_tick: r.try_get(11)?,
                last_run_at: r.try_get(12)?,
                runs: r.try_get(13)?,
                skipped: r.try_get(14)?,
                now: r.try_get(15)?,
            })
        })
        .collect()
}

/// Whether the stored definition (a `schedule_lock.sql` row) is `spec`'s.
fn same_definition(row: &tokio_postgres::Row, spec: &ScheduleSpec) -> Result<bool> {
    let stored_args: String = row.try_get(5)?;
    let args_same = serde_json::from_str::<serde_json::Value>(&stored_args).ok()
        == serde_json::from_str::<serde_json::Value>(&spec.job.args).ok();
    let j = &spec.job;
    Ok(args_same
        && row.try_get::<_, String>(0)? == spec.cron
        && row.try_get::<_, String>(1)? == spec.time_zone
        && row.try_get::<_, String>(2)? == j.kind
        && row.try_get::<_, String>(3)? == j.queue
        && row.try_get::<_, i16>(4)? == j.priority
        && row.try_get::<_, i32>(6)? == j.max_attempts
        && row.try_get::<_, Option<i32>>(7)? == j.timeout_ms
        && row.try_get::<_, Option<String>>(8)? == j.unique_key
        && row.try_get::<_, String>(9)? == spec.missed
        && row.try_get::<_, i32>(10)? == spec.catch_up_max
        && row.try_get::<_, i32>(11)? == spec.grace_ms)
}

impl Store {
    /// Declares `spec` as this engine's: stores it if new, rewrites the stored
    /// definition if it differs (the newest declaration wins), and marks it active for
    /// `active_for`. With `run_on_start`, a declaration that is new, changed the
    /// definition or revived an inactive schedule also enqueues one run now. Returns
    /// whether it did.
    pub(crate) async fn declare_schedule(
        &self,
        spec: &ScheduleSpec,
        worker_id: &str,
        active_for: Duration,
    ) -> Result<bool> {
        self.timed(async {
            let mut conn = self.conn().await?;
            conn.set_suspect(true);
            let tx = conn.client_mut().transaction().await?;
            let j = &spec.job;
            let active_ms = active_for.as_secs_f64() * 1000.0;
            let missed = spec.missed;
            let params: [&(dyn tokio_postgres::types::ToSql + Sync); 15] = [
                &spec.name,
                &spec.cron,
                &spec.time_zone,
                &j.kind,
                &j.queue,
                &j.priority,
                &j.args,
                &j.max_attempts,
                &j.timeout_ms,
                &j.unique_key,
                &missed,
                &spec.catch_up_max,
                &spec.grace_ms,
                &worker_id,
                &active_ms,
            ];
            let sql = &self.inner.sql;
            let inserted = !tx.query(&sql.schedule_insert, &params).await?.is_empty();
            let mut start_run = inserted;
            if !inserted {
                let row = tx.query_one(&sql.schedule_lock, &[&spec.name]).await?;
                let inactive: bool = row.try_get(12)?;
                let changed = !same_definition(&row, spec)?;
                if changed {
                    tx.execute(&sql.schedule_redefine, &params).await?;
                    tracing::info!(schedule = %spec.name, "stored a new definition of the schedule");
                } else {
                    let names = [spec.name.as_str()];
                    tx.execute(&sql.schedule_heartbeat, &[&&names[..], &active_ms])
                        .await?;
                }
                start_run = changed || inactive;
            }
            let fired = spec.run_on_start && start_run;
            if fired {
                self.insert_or_find(&tx, j, true).await?;
            }
            tx.commit().await?;
            conn.set_suspect(false);
            Ok(fired)
        })
        .await
    }

    /// Keeps `names` active for `active_for` more.
    pub(crate) async fn schedules_heartbeat(
        &self,
        names: &[String],
        active_for: Duration,
    ) -> Result<()> {
        self.timed(async {
            let mut conn = self.conn().await?;
            let ms = active_for.as_secs_f64() * 1000.0;
            conn.query_once(&self.inner.sql.schedule_heartbeat, &[&names, &ms])
                .await?;
            Ok(())
        })
        .await
    }

    /// The stored definitions and last ticks of `names`, with the database clock.
    pub(crate) async fn load_schedules(&self, names: &[String]) -> Result<Vec<StoredSchedule>> {
        self.timed(async {
            let mut conn = self.conn().await?;
            let rows = conn
                .query_once(&self.inner.sql.schedule_load, &[&names])
                .await?;
            rows.iter()
                .map(|r| {
                    let grace_ms: i32 = r.try_get(5)?;
                    Ok(StoredSchedule {
                        name: r.try_get(0)?,
                        cron: r.try_get(1)?,
                        time_zone: r.try_get(2)?,
                        missed: r.try_get(3)?,
                        catch_up_max: r.try_get(4)?,
                        grace: Duration::from_millis(grace_ms.max(0) as u64),
                        declared_at: r.try_get(6)?,
                        last_tick: r.try_get(7)?,
                        now: r.try_get(8)?,
                    })
                })
                .collect()
        })
        .await
    }

    /// Enqueues a job for each of `ticks` and moves the schedule's last tick from
    /// `from` to `to`, if nobody moved it first (see `sql/schedule_fire.sql`). Returns
    /// whether this call moved it and how many jobs it inserted.
    pub(crate) async fn fire_schedule(
        &self,
        s: &StoredSchedule,
        ticks: &[DateTime<Utc>],
        to: DateTime<Utc>,
        skipped: u64,
    ) -> Result<(bool, i64)> {
        self.timed(async {
            let mut conn = self.conn().await?;
            let skipped = i64::try_from(skipped).unwrap_or(i64::MAX);
            let rows = conn
                .query_once(
                    &self.inner.sql.schedule_fire,
                    &[&s.name, &ticks, &s.last_tick, &to, &s.declared_at, &skipped],
                )
                .await?;
            Ok((rows[0].try_get(0)?, rows[0].try_get(1)?))
        })
        .await
    }

    /// Every schedule of the schema (for stats).
    pub(crate) async fn list_schedules(&self) -> Result<Vec<ListedSchedule>> {
        self.timed(async {
            let conn = self.conn().await?;
            list(&**conn, &self.inner.schema).await
        })
        .await
    }
}

//! Rows in and out of the statements, and their parameter arrays.

use std::time::{Duration, SystemTime};

use bytes::{BufMut, BytesMut};
use tokio_postgres::types::{to_sql_checked, FromSql, IsNull, ToSql, Type};
use tokio_postgres::Row;

use crate::enqueue::NewJob;
use crate::error::Result;
use crate::outcome::Action;
use crate::stats::LiveRow;
use crate::telemetry::metrics::RunLabels;

type Param<'a> = &'a (dyn ToSql + Sync);

/// What one claim asks for.
#[derive(Debug, Clone)]
pub(crate) struct ClaimRequest {
    /// Lowest priority value the lane may take (0 when work-conserving).
    pub(crate) floor: i16,
    /// Highest (least urgent) priority value the lane serves.
    pub(crate) ceiling: i16,
    pub(crate) queue: String,
    pub(crate) kinds: Vec<String>,
    pub(crate) limit: u32,
    pub(crate) token: i64,
    pub(crate) lease_ms: f64,
    pub(crate) worker_id: String,
}

/// A job this worker now holds a lease on.
#[derive(Debug, Clone)]
pub(crate) struct ClaimedJob {
    pub(crate) id: i64,
    pub(crate) kind: String,
    pub(crate) priority: i16,
    pub(crate) attempt: i32,
    pub(crate) max_attempts: i32,
    pub(crate) args: Vec<u8>,
    pub(crate) timeout_ms: Option<i32>,
    pub(crate) run_at: SystemTime,
    /// How many times its lease expired before (its worker died running it).
    pub(crate) rescues: i32,
    /// The trace context it was enqueued under (`metadata->>'traceparent'`).
    pub(crate) traceparent: Option<String>,
}

impl ClaimedJob {
    pub(crate) fn from_row(row: &Row) -> Result<Self> {
        Ok(ClaimedJob {
            id: row.try_get(0)?,
            kind: row.try_get(1)?,
            priority: row.try_get(2)?,
            attempt: row.try_get(3)?,
            max_attempts: row.try_get(4)?,
            args: row.try_get::<_, RawJson>(5)?.0,
            timeout_ms: row.try_get(6)?,
            run_at: row.try_get(7)?,
            rescues: row.try_get(8)?,
            traceparent: row.try_get(9)?,
        })
    }
}

/// `jsonb` as its JSON text, without building a `serde_json::Value` on the way.
struct RawJson(Vec<u8>);

impl<'a> FromSql<'a> for RawJson {
    fn from_sql(
        ty: &Type,
        raw: &'a [u8],
    ) -> Result<Self, Box<dyn std::error::Error + Sync + Send>> {
        if *ty == Type::JSONB {
            // jsonb's binary format is a version byte (1) followed by the JSON text.
            match raw.split_first() {
                Some((1, text)) => Ok(RawJson(text.to_vec())),
                _ => Err("unsupported jsonb format version".into()),
            }
        } else {
            Ok(RawJson(raw.to_vec()))
        }
    }

    fn accepts(ty: &Type) -> bool {
        *ty == Type::JSONB || *ty == Type::JSON
    }
}

/// A run's outcome, fenced by the lease token it ran under.
#[derive(Debug, Clone)]
pub(crate) struct OutcomeRow {
    pub(crate) id: i64,
    pub(crate) token: i64,
    pub(crate) action: Action,
    /// The run's lane and kind, for `pglane_jobs_finished_total` once written; `None`
    /// for hand-backs (nothing finished).
    pub(crate) labels: Option<RunLabels>,
}

pub(crate) struct OutcomeParams {
    ids: Vec<i64>,
    tokens: Vec<i64>,
    actions: Vec<&'static str>,
    delays: Vec<f64>,
    errors: Vec<Option<String>>,
    causes: Vec<Option<&'static str>>,
    keep_completed: bool,
}

impl OutcomeParams {
    /// The batch's columns; `keep_completed` false deletes completed jobs without
    /// copying them to `jobs_finished` (a zero `completed_retention`).
    pub(crate) fn new(batch: &[OutcomeRow], keep_completed: bool) -> Self {
        let n = batch.len();
        let mut p = OutcomeParams {
            ids: Vec::with_capacity(n),
            tokens: Vec::with_capacity(n),
            actions: Vec::with_capacity(n),
            delays: Vec::with_capacity(n),
            errors: Vec::with_capacity(n),
            causes: Vec::with_capacity(n),
            keep_completed,
        };
        for o in batch {
            p.ids.push(o.id);
            p.tokens.push(o.token);
            p.actions.push(o.action.name());
            let (delay, error, cause) = match &o.action {
                Action::Complete | Action::Release => (0.0, None, None),
                Action::Retry {
                    delay,
                    error,
                    cause,
                } => (delay.as_secs_f64(), Some(error.clone()), Some(*cause)),
                Action::Fail { error, cause } => (0.0, Some(error.clone()), Some(*cause)),
                Action::Snooze { delay } => (delay.as_secs_f64(), None, None),
            };
            p.delays.push(delay);
            p.errors.push(error);
            p.causes.push(cause);
        }
        p
    }

    pub(crate) fn as_params(&self) -> [Param<'_>; 7] {
        [
            &self.ids,
            &self.tokens,
            &self.actions,
            &self.delays,
            &self.errors,
            &self.causes,
            &self.keep_completed,
        ]
    }
}

/// Column arrays for the bulk insert.
pub(crate) struct EnqueueParams<'a> {
    kinds: Vec<&'a str>,
    queues: Vec<&'a str>,
    priorities: Vec<i16>,
    args: Vec<&'a str>,
    max_attempts: Vec<i32>,
    run_at: Vec<Option<SystemTime>>,
    delay_s: Vec<Option<f64>>,
    timeouts: Vec<Option<i32>>,
    unique_keys: Vec<Option<&'a str>>,
    notify: bool,
    traceparents: Vec<Option<&'a str>>,
}

impl<'a> EnqueueParams<'a> {
    pub(crate) fn new(jobs: &'a [NewJob], notify: bool) -> Self {
        EnqueueParams {
            notify,
            kinds: jobs.iter().map(|j| j.kind.as_str()).collect(),
            queues: jobs.iter().map(|j| j.queue.as_str()).collect(),
            priorities: jobs.iter().map(|j| j.priority).collect(),
            args: jobs.iter().map(|j| j.args.as_str()).collect(),
            max_attempts: jobs.iter().map(|j| j.max_attempts).collect(),
            run_at: jobs.iter().map(|j| j.run_at).collect(),
            delay_s: jobs.iter().map(|j| j.delay_s).collect(),
            timeouts: jobs.iter().map(|j| j.timeout_ms).collect(),
            unique_keys: jobs.iter().map(|j| j.unique_key.as_deref()).collect(),
            traceparents: jobs.iter().map(|j| j.traceparent.as_deref()).collect(),
        }
    }

    pub(crate) fn as_params(&self) -> [Param<'_>; 11] {
        [
            &self.kinds,
            &self.queues,
            &self.priorities,
            &self.args,
            &self.max_attempts,
            &self.run_at,
            &self.delay_s,
            &self.timeouts,
            &self.unique_keys,
            &self.notify,
            &self.traceparents,
        ]
    }
}

/// One group of live jobs from the stats query (`sql/stats.sql`).
pub(crate) fn live_row(row: &Row) -> LiveRow {
    LiveRow {
        state: row.get(0),
        priority: row.get(1),
        kind: row.get(2),
        due: row.get(3),
        count: row.get(4),
        oldest_wait_s: row.get::<_, Option<f64>>(5).unwrap_or(0.0),
    }
}

/// Column types of `sql/copy_jobs.sql`, in its column order.
pub(crate) const COPY_COLUMNS: [Type; 8] = [
    Type::TEXT,        // kind
    Type::TEXT,        // queue
    Type::INT2,        // priority
    Type::JSONB,       // args
    Type::INT4,        // max_attempts
    Type::TIMESTAMPTZ, // run_at
    Type::INT4,        // timeout_ms
    Type::TEXT,        // unique_key
];

/// When a copied job becomes due. COPY cannot evaluate `now() + delay` per row, so the
/// delay is added to `db_now`, the copying transaction's own `now()`: the database
/// clock, exactly what the column default and the unnest insert would use.
pub(crate) fn copy_run_at(job: &NewJob, db_now: SystemTime) -> SystemTime {
    match (job.run_at, job.delay_s) {
        (Some(at), _) => at,
        (None, Some(d)) => db_now + Duration::from_secs_f64(d.max(0.0)),
        (None, None) => db_now,
    }
}

/// Validated JSON text sent as `jsonb` in binary form. Binary COPY has no text
/// fallback, so a plain `&str` cannot fill a `jsonb` column, and going through
/// `serde_json::Value` would parse and re-serialize every job's args for nothing.
#[derive(Debug)]
pub(crate) struct JsonbText<'a>(pub(crate) &'a str);

impl ToSql for JsonbText<'_> {
    fn to_sql(
        &self,
        _: &Type,
        out: &mut BytesMut,
    ) -> Result<IsNull, Box<dyn std::error::Error + Sync + Send>> {
        // jsonb's binary format is a version byte (1) followed by the JSON text.
        out.put_u8(1);
        out.put_slice(self.0.as_bytes());
        Ok(IsNull::No)
    }

    fn accepts(ty: &Type) -> bool {
        *ty == Type::JSONB
    }

    to_sql_checked!();
}

#[cfg(test)]
mod tests {
    use super::*;

    fn job(run_at: Option<SystemTime>, delay_s: Option<f64>) -> NewJob {
        NewJob {
            kind: "k".into(),
            queue: "default".into(),
            priority: 1,
            args: "{}".into(),
            max_attempts: 1,
            run_at,
            delay_s,
            timeout_ms: None,
            unique_key: None,
            traceparent: None,
        }
    }

    #[test]
    fn jsonb_text_is_version_byte_then_text() {
        let mut out = BytesMut::new();
        let r = JsonbText(r#"{"a":1}"#)
            .to_sql_checked(&Type::JSONB, &mut out)
            .unwrap();
        assert!(matches!(r, IsNull::No));
        assert_eq!(&out[..], b"\x01{\"a\":1}");
        assert!(JsonbText("{}")
            .to_sql_checked(&Type::TEXT, &mut BytesMut::new())
            .is_err());
    }

    #[test]
    fn copied_jobs_are_due_by_the_database_clock() {
        let db_now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_000_000);
        let at = SystemTime::UNIX_EPOCH + Duration::from_secs(5);
        assert_eq!(copy_run_at(&job(None, None), db_now), db_now);
        assert_eq!(
            copy_run_at(&job(None, Some(1.5)), db_now),
            db_now + Duration::from_millis(1500)
        );
        assert_eq!(copy_run_at(&job(Some(at), Some(9.0)), db_now), at);
    }

    #[test]
    fn copy_columns_match_the_statement() {
        let sql = include_str!("sql/copy_jobs.sql");
        let cols = "(kind, queue, priority, args, max_attempts, run_at, timeout_ms, unique_key)";
        assert!(
            sql.contains(cols),
            "copy_jobs.sql lists the columns in COPY_COLUMNS order"
        );
        assert_eq!(COPY_COLUMNS.len(), cols.split(',').count());
    }
}

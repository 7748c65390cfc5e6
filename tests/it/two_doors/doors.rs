//! The two doors: the Rust API (`Engine::enqueue`, one job type per kind, since a kind
//! is a constant of its type) and the SQL function, called with bound parameters; and
//! the stored row, to compare what each door wrote.

use std::time::Duration;

use pglane::validate::MAX_KIND_BYTES;
use pglane::{Engine, Enqueue, Job, JobContext, JobError, JobOptions};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::cases::{Args, Input, Wait, When};
use crate::support::*;

/// Job types that only carry args, one per kind the table needs (a kind is a constant
/// of its type in Rust).
macro_rules! raw_kinds {
    ($($name:ident = $kind:expr;)*) => {$(
        #[derive(Debug, Clone, Serialize, Deserialize)]
        #[serde(transparent)]
        struct $name(Value);
        impl Job for $name {
            const KIND: &'static str = $kind;
            async fn run(self, _: JobContext) -> Result<(), JobError> {
                Ok(())
            }
        }
    )*};
}

const fn repeated<const N: usize>(b: u8) -> [u8; N] {
    [b; N]
}
const K255_BYTES: [u8; MAX_KIND_BYTES] = repeated(b'k');
const K256_BYTES: [u8; MAX_KIND_BYTES + 1] = repeated(b'k');
pub(super) const K255: &str = match std::str::from_utf8(&K255_BYTES) {
    Ok(s) => s,
    Err(_) => panic!("ASCII"),
};
pub(super) const K256: &str = match std::str::from_utf8(&K256_BYTES) {
    Ok(s) => s,
    Err(_) => panic!("ASCII"),
};

raw_kinds! {
    Raw = "raw";
    Dotted = "Reports.Render:v2/x-y";
    Long = K255;
    TooLong = K256;
    Empty = "";
    Spaced = "a b";
    Newline = "a\n";
    Accented = "é";
    Semicolon = "a;b";
}

/// A float the JSON value type cannot carry (serde_json turns NaN and infinities into
/// null); the Rust API must catch it before serializing.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Float {
    n: f64,
}

impl Job for Float {
    const KIND: &'static str = "raw";
    async fn run(self, _: JobContext) -> Result<(), JobError> {
        Ok(())
    }
}

/// The Rust door. `None`: the input cannot be expressed in Rust.
pub(super) async fn rust_door(engine: &Engine, i: &Input) -> Option<pglane::Result<i64>> {
    let mut o = JobOptions::default();
    if let Some(p) = i.priority {
        // Priorities are i16 in Rust: a wider value cannot even be written.
        o = o.priority(i16::try_from(p).ok()?);
    }
    match &i.run_at {
        Some(When::At(t)) => o = o.run_at(*t),
        Some(When::SqlOnly(_)) => return None,
        None => {}
    }
    match &i.delay {
        Some(Wait::Secs(s)) => o = o.delay(Duration::from_secs(*s)),
        Some(Wait::SqlOnly(_)) => return None,
        None => {}
    }
    if let Some(n) = i.max_attempts {
        o = o.max_attempts(i32::try_from(n).ok()?);
    }
    if let Some(q) = &i.queue {
        o = o.queue(q.clone());
    }
    if let Some(k) = &i.unique_key {
        o = o.unique_key(k.clone());
    }
    if let Some(ms) = i.timeout_ms {
        o = o.timeout(Duration::from_millis(ms as u64));
    }
    let v = match &i.args {
        Args::Json(v) => v.clone(),
        Args::Float(n, _) => {
            let job = Enqueue::new(Float { n: *n }).options(o);
            return Some(engine.enqueue(job).await);
        }
    };
    Some(match i.kind {
        "raw" => engine.enqueue(Enqueue::new(Raw(v)).options(o)).await,
        "Reports.Render:v2/x-y" => engine.enqueue(Enqueue::new(Dotted(v)).options(o)).await,
        K255 => engine.enqueue(Enqueue::new(Long(v)).options(o)).await,
        K256 => engine.enqueue(Enqueue::new(TooLong(v)).options(o)).await,
        "" => engine.enqueue(Enqueue::new(Empty(v)).options(o)).await,
        "a b" => engine.enqueue(Enqueue::new(Spaced(v)).options(o)).await,
        "a\n" => engine.enqueue(Enqueue::new(Newline(v)).options(o)).await,
        "é" => engine.enqueue(Enqueue::new(Accented(v)).options(o)).await,
        "a;b" => engine.enqueue(Enqueue::new(Semicolon(v)).options(o)).await,
        other => panic!("no job type for kind {other:?}"),
    })
}

/// The SQL door, with the values bound as parameters (defaults as the Rust API's).
pub(super) async fn sql_door(db: &TestDb, i: &Input) -> Result<i64, tokio_postgres::Error> {
    let args = match &i.args {
        Args::Json(v) => serde_json::to_string(v).unwrap(),
        Args::Float(_, text) => text.to_string(),
    };
    let (run_at, run_at_text) = match &i.run_at {
        Some(When::At(t)) => (Some(*t), None),
        Some(When::SqlOnly(s)) => (None, Some(s.to_string())),
        None => (None, None),
    };
    let delay = match &i.delay {
        Some(Wait::Secs(s)) => Some(format!("{s} seconds")),
        Some(Wait::SqlOnly(s)) => Some(s.to_string()),
        None => None,
    };
    let sql = format!(
        "SELECT \"{}\".enqueue(kind => $1::text, args => $2::text::jsonb,
             priority => coalesce($3::int8::int4, 100),
             run_at => coalesce($4::timestamptz, $5::text::timestamptz),
             max_attempts => coalesce($6::int8::int4, 20),
             queue => coalesce($7::text, 'default'), unique_key => $8::text,
             timeout_ms => $9::int8::int4, delay => $10::text::interval)",
        db.schema
    );
    let row = db
        .client
        .query_one(
            &sql,
            &[
                &i.kind,
                &args,
                &i.priority,
                &run_at,
                &run_at_text,
                &i.max_attempts,
                &i.queue,
                &i.unique_key,
                &i.timeout_ms,
                &delay,
            ],
        )
        .await?;
    Ok(row.get(0))
}

/// The stored rows: what must match across doors, the absolute `run_at` (compared when
/// the case gives one) and `run_at` relative to the insert (compared otherwise).
pub(super) async fn stored(db: &TestDb) -> Vec<(String, String, String)> {
    db.query(
        "SELECT concat_ws(' | ', kind, queue, priority, args::text, max_attempts, timeout_ms,
                unique_key), run_at::text, (run_at - created_at)::text
         FROM {schema}.jobs ORDER BY id",
    )
    .await
    .iter()
    .map(|r| (r.get(0), r.get(1), r.get(2)))
    .collect()
}

//! One table of enqueue cases, run through both doors: the Rust API (`Engine::enqueue`)
//! and the SQL function (`SELECT schema.enqueue(…)`). The doors must agree on every
//! case: both accept it and store the same row, or both reject it and write nothing.
//! Every limit of `pglane::validate` is covered at and just past its bound.
//!
//! A few inputs exist at one door only (an SQL interval can be negative, a Rust
//! `Duration` cannot; a Rust float can be infinite, a jsonb number cannot): those cases
//! say what the other door's nearest input is, or run at one door alone.

use std::time::{Duration, SystemTime};

use pglane::validate::{
    MAX_ARGS_BYTES, MAX_ARGS_DEPTH, MAX_KIND_BYTES, MAX_SCHEDULE_AHEAD, MAX_UNIQUE_KEY_BYTES,
};
use pglane::{Engine, Enqueue, Error, Job, JobContext, JobError, JobOptions};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

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
const K255: &str = match std::str::from_utf8(&K255_BYTES) {
    Ok(s) => s,
    Err(_) => panic!("ASCII"),
};
const K256: &str = match std::str::from_utf8(&K256_BYTES) {
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

#[derive(Debug, Clone)]
enum Args {
    /// The same JSON through both doors.
    Json(Value),
    /// `Float { n }` in Rust; in SQL the given text (the nearest jsonb can say).
    Float(f64, &'static str),
}

#[derive(Debug, Clone)]
enum When {
    At(SystemTime),
    /// SQL only (`'infinity'`): Rust's `SystemTime` has no such value.
    SqlOnly(&'static str),
}

#[derive(Debug, Clone)]
enum Wait {
    Secs(u64),
    /// SQL only (a negative interval): Rust's `Duration` cannot be negative.
    SqlOnly(&'static str),
}

#[derive(Debug, Clone)]
struct Input {
    kind: &'static str,
    args: Args,
    priority: Option<i64>,
    run_at: Option<When>,
    delay: Option<Wait>,
    max_attempts: Option<i64>,
    queue: Option<String>,
    unique_key: Option<String>,
    timeout_ms: Option<i64>,
}

fn input() -> Input {
    Input {
        kind: "raw",
        args: Args::Json(json!({"to": "a@b.c"})),
        priority: None,
        run_at: None,
        delay: None,
        max_attempts: None,
        queue: None,
        unique_key: None,
        timeout_ms: None,
    }
}

struct Case {
    what: String,
    ok: bool,
    input: Input,
    /// The SQLSTATE the SQL door rejects with (22023 from the function unless jsonb
    /// itself refuses the value first).
    sql_code: &'static str,
}

fn case(what: impl Into<String>, ok: bool, input: Input) -> Case {
    Case {
        what: what.into(),
        ok,
        input,
        sql_code: "22023",
    }
}

/// `levels` containers nested inside each other, arrays or objects.
fn nested(levels: usize, objects: bool) -> Value {
    (0..levels).fold(json!(0), |v, _| {
        if objects {
            json!({ "a": v })
        } else {
            json!([v])
        }
    })
}

/// An object whose compact JSON is exactly `bytes` long, with separators and
/// separator characters inside strings (the SQL door measures jsonb's text form, which
/// spaces its separators, and must count them off like serde_json never wrote them).
fn sized(bytes: usize) -> Value {
    let with =
        |fill: usize| json!({"k": "x".repeat(fill), "list": [1, 2, 3], "m": {"s": "a,b: c"}});
    let base = serde_json::to_string(&with(0)).unwrap().len();
    let v = with(bytes - base);
    assert_eq!(serde_json::to_string(&v).unwrap().len(), bytes);
    v
}

/// A key of exactly `bytes` bytes, mostly two-byte characters.
fn multi_byte_key(bytes: usize) -> String {
    let mut key = "é".repeat(bytes / 2);
    key.push_str(&"k".repeat(bytes % 2));
    assert_eq!(key.len(), bytes);
    key
}

fn cases(now: SystemTime) -> Vec<Case> {
    let with = |f: &dyn Fn(&mut Input)| {
        let mut i = input();
        f(&mut i);
        i
    };
    let args = |v: Value| with(&|i| i.args = Args::Json(v.clone()));
    let epoch = SystemTime::UNIX_EPOCH;
    let hour = Duration::from_secs(3600);
    let mut c = vec![
        case("ordinary job", true, input()),
        // kind
        case(
            "dotted kind",
            true,
            with(&|i| i.kind = "Reports.Render:v2/x-y"),
        ),
        case("kind at the byte limit", true, with(&|i| i.kind = K255)),
        case("kind a byte over", false, with(&|i| i.kind = K256)),
        case("empty kind", false, with(&|i| i.kind = "")),
        case("kind with a space", false, with(&|i| i.kind = "a b")),
        case("kind ending in a newline", false, with(&|i| i.kind = "a\n")),
        case("non-ASCII kind", false, with(&|i| i.kind = "é")),
        case("kind with a semicolon", false, with(&|i| i.kind = "a;b")),
        // queue
        case(
            "queue of 63 bytes",
            true,
            with(&|i| i.queue = Some("q".repeat(63))),
        ),
        case(
            "queue of 64 bytes",
            false,
            with(&|i| i.queue = Some("q".repeat(64))),
        ),
        case(
            "queue starting with _",
            true,
            with(&|i| i.queue = Some("_mail2".into())),
        ),
        case(
            "empty queue",
            false,
            with(&|i| i.queue = Some(String::new())),
        ),
        case(
            "mixed-case queue",
            false,
            with(&|i| i.queue = Some("Mail".into())),
        ),
        case(
            "queue starting with a digit",
            false,
            with(&|i| i.queue = Some("1mail".into())),
        ),
        case(
            "queue with a semicolon",
            false,
            with(&|i| i.queue = Some("a;b".into())),
        ),
        case(
            "non-ASCII queue",
            false,
            with(&|i| i.queue = Some("é".into())),
        ),
        // args: shape
        case("args: a number", true, args(json!(5))),
        case("args: a string", true, args(json!("text"))),
        case("args: JSON null", true, args(Value::Null)),
        case("args: an array", true, args(json!([1, "two", null]))),
        case(
            "args: unicode and escapes",
            true,
            args(json!({"s": "é \" \\ \n \t ✓"})),
        ),
        // args: depth
        case(
            "args: arrays 64 deep",
            true,
            args(nested(MAX_ARGS_DEPTH, false)),
        ),
        case(
            "args: arrays 65 deep",
            false,
            args(nested(MAX_ARGS_DEPTH + 1, false)),
        ),
        case(
            "args: objects 64 deep",
            true,
            args(nested(MAX_ARGS_DEPTH, true)),
        ),
        case(
            "args: objects 65 deep",
            false,
            args(nested(MAX_ARGS_DEPTH + 1, true)),
        ),
        case("args: 100 deep", false, args(nested(100, false))),
        case("args: 200 deep", false, args(nested(200, true))),
        // args: size (compact JSON bytes, as serde_json writes them)
        case(
            "args: exactly the size cap",
            true,
            args(sized(MAX_ARGS_BYTES)),
        ),
        case(
            "args: one byte over the cap",
            false,
            args(sized(MAX_ARGS_BYTES + 1)),
        ),
        // args: numbers
        case(
            "args: 1e300",
            true,
            with(&|i| i.args = Args::Float(1e300, r#"{"n": 1e300}"#)),
        ),
        case(
            "args: beyond a 64-bit float (infinity in Rust, 1e400 in SQL)",
            false,
            with(&|i| i.args = Args::Float(f64::INFINITY, r#"{"n": 1e400}"#)),
        ),
        case(
            "args: beyond a 64-bit float, negative",
            false,
            with(&|i| i.args = Args::Float(f64::NEG_INFINITY, r#"{"n": -1e400}"#)),
        ),
        // priority
        case("priority 0", true, with(&|i| i.priority = Some(0))),
        case("priority 32767", true, with(&|i| i.priority = Some(32767))),
        case("priority -1", false, with(&|i| i.priority = Some(-1))),
        case("priority 32768", false, with(&|i| i.priority = Some(32768))),
        case(
            "priority 100000",
            false,
            with(&|i| i.priority = Some(100_000)),
        ),
        // max_attempts
        case("max_attempts 1", true, with(&|i| i.max_attempts = Some(1))),
        case(
            "max_attempts 1000",
            true,
            with(&|i| i.max_attempts = Some(1000)),
        ),
        case("max_attempts 0", false, with(&|i| i.max_attempts = Some(0))),
        case(
            "max_attempts -1",
            false,
            with(&|i| i.max_attempts = Some(-1)),
        ),
        case(
            "max_attempts 1001",
            false,
            with(&|i| i.max_attempts = Some(1001)),
        ),
        // timeout
        case("timeout 1 ms", true, with(&|i| i.timeout_ms = Some(1))),
        case(
            "timeout 24 h",
            true,
            with(&|i| i.timeout_ms = Some(86_400_000)),
        ),
        case("timeout 0", false, with(&|i| i.timeout_ms = Some(0))),
        case(
            "timeout 24 h + 1 ms",
            false,
            with(&|i| i.timeout_ms = Some(86_400_001)),
        ),
        // unique key (bytes, not characters: "é" is two)
        case(
            "unique key at the byte limit",
            true,
            with(&|i| i.unique_key = Some("k".repeat(MAX_UNIQUE_KEY_BYTES))),
        ),
        case(
            "unique key at the byte limit, multi-byte",
            true,
            with(&|i| i.unique_key = Some(multi_byte_key(MAX_UNIQUE_KEY_BYTES))),
        ),
        case(
            "unique key a byte over",
            false,
            with(&|i| i.unique_key = Some("k".repeat(MAX_UNIQUE_KEY_BYTES + 1))),
        ),
        case(
            "unique key a byte over, multi-byte",
            false,
            with(&|i| i.unique_key = Some(multi_byte_key(MAX_UNIQUE_KEY_BYTES + 1))),
        ),
        case(
            "empty unique key",
            false,
            with(&|i| i.unique_key = Some(String::new())),
        ),
        // run_at
        case(
            "run_at 1970-01-01 00:00:00",
            true,
            with(&|i| i.run_at = Some(When::At(epoch))),
        ),
        case(
            "run_at one second before 1970",
            false,
            with(&|i| i.run_at = Some(When::At(epoch - Duration::from_secs(1)))),
        ),
        case(
            "run_at 1900-01-01",
            false,
            with(&|i| i.run_at = Some(When::At(epoch - Duration::from_secs(2_208_988_800)))),
        ),
        case(
            "run_at an hour in the past",
            true,
            with(&|i| i.run_at = Some(When::At(now - hour))),
        ),
        case(
            "run_at an hour short of the limit",
            true,
            with(&|i| i.run_at = Some(When::At(now + MAX_SCHEDULE_AHEAD - hour))),
        ),
        case(
            "run_at an hour past the limit",
            false,
            with(&|i| i.run_at = Some(When::At(now + MAX_SCHEDULE_AHEAD + hour))),
        ),
        case(
            "run_at 'infinity' (SQL only)",
            false,
            with(&|i| i.run_at = Some(When::SqlOnly("infinity"))),
        ),
        case(
            "run_at '-infinity' (SQL only)",
            false,
            with(&|i| i.run_at = Some(When::SqlOnly("-infinity"))),
        ),
        // delay
        case("delay 0", true, with(&|i| i.delay = Some(Wait::Secs(0)))),
        case(
            "delay at the limit",
            true,
            with(&|i| i.delay = Some(Wait::Secs(MAX_SCHEDULE_AHEAD.as_secs()))),
        ),
        case(
            "delay a second past the limit",
            false,
            with(&|i| i.delay = Some(Wait::Secs(MAX_SCHEDULE_AHEAD.as_secs() + 1))),
        ),
        case(
            "delay '-1 second' (SQL only)",
            false,
            with(&|i| i.delay = Some(Wait::SqlOnly("-1 second"))),
        ),
        case(
            "delay '-60 years' (SQL only)",
            false,
            with(&|i| i.delay = Some(Wait::SqlOnly("-60 years"))),
        ),
        case(
            "run_at given and a delay past the limit",
            false,
            with(&|i| {
                i.run_at = Some(When::At(now + hour));
                i.delay = Some(Wait::Secs(MAX_SCHEDULE_AHEAD.as_secs() + 1));
            }),
        ),
        case(
            "run_at wins over a valid delay",
            true,
            with(&|i| {
                i.run_at = Some(When::At(now + hour));
                i.delay = Some(Wait::Secs(60));
            }),
        ),
    ];
    // jsonb cannot hold a NUL character: the SQL door refuses it at the cast, before the
    // function runs.
    let mut nul = case(
        "args: NUL in a string",
        false,
        args(json!({"s": "a\u{0}b"})),
    );
    nul.sql_code = "22P05";
    c.push(nul);
    let mut nul_key = case("args: NUL in a key", false, args(json!({"k\u{0}": 1})));
    nul_key.sql_code = "22P05";
    c.push(nul_key);
    c
}

/// The Rust door. `None`: the input cannot be expressed in Rust.
async fn rust_door(engine: &Engine, i: &Input) -> Option<pglane::Result<i64>> {
    let mut o = JobOptions::default();
    if let Some(p) = i.priority {
        o = o.priority(p);
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
        o = o.max_attempts(n);
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
async fn sql_door(db: &TestDb, i: &Input) -> Result<i64, tokio_postgres::Error> {
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
async fn stored(db: &TestDb) -> Vec<(String, String, String)> {
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

#[actix_rt::test]
async fn rust_api_and_sql_function_agree_on_every_limit() {
    let db = TestDb::new().await;
    let engine = db.engine().register::<Probe>().start().await.unwrap();
    let now = SystemTime::now();
    let table = cases(now);
    let mut tried = (0, 0, 0);
    for c in &table {
        let rust = rust_door(&engine, &c.input).await;
        let rust_row = stored(&db).await;
        db.query("DELETE FROM {schema}.jobs").await;
        let sql = sql_door(&db, &c.input).await;
        let sql_row = stored(&db).await;
        db.query("DELETE FROM {schema}.jobs").await;

        match &rust {
            None => {}
            Some(Ok(_)) => assert!(c.ok, "{}: Rust accepted it", c.what),
            Some(Err(Error::InvalidJob(_))) => assert!(!c.ok, "{}: Rust rejected it", c.what),
            Some(Err(e)) => panic!("{}: Rust failed otherwise: {e:?}", c.what),
        }
        match &sql {
            Ok(_) => assert!(c.ok, "{}: SQL accepted it", c.what),
            Err(e) => {
                let db_err = e
                    .as_db_error()
                    .unwrap_or_else(|| panic!("{}: {e:?}", c.what));
                assert!(!c.ok, "{}: SQL rejected it: {}", c.what, db_err.message());
                assert_eq!(db_err.code().code(), c.sql_code, "{}: {db_err:?}", c.what);
                if c.sql_code == "22023" {
                    assert!(db_err.message().starts_with("pglane: "), "{}", c.what);
                }
            }
        }
        if c.ok {
            assert_eq!(sql_row.len(), 1, "{}: SQL stored {sql_row:?}", c.what);
            if rust.is_some() {
                let (r, q) = (&rust_row[0], &sql_row[0]);
                assert_eq!(r.0, q.0, "{}: the doors stored different rows", c.what);
                if c.input.run_at.is_some() {
                    assert_eq!(r.1, q.1, "{}: different run_at", c.what);
                } else {
                    assert_eq!(r.2, q.2, "{}: different delay", c.what);
                }
            }
        } else {
            assert!(
                rust_row.is_empty() && sql_row.is_empty(),
                "{}: written",
                c.what
            );
        }
        tried.0 += 1;
        tried.1 += usize::from(rust.is_some());
        tried.2 += usize::from(c.ok);
    }
    println!(
        "TWO-DOORS {} cases ({} through both doors, {} SQL only; {} accepted, {} rejected)",
        tried.0,
        tried.1,
        tried.0 - tried.1,
        tried.2,
        tried.0 - tried.2
    );
    engine.shutdown().await.unwrap();
    db.cleanup().await;
}

#[actix_rt::test]
async fn migrate_refuses_a_database_that_is_not_utf8() {
    let admin = connect(database_url()).await;
    let name = format!("pglane_ascii_{:08x}", fastrand::u32(..));
    admin
        .batch_execute(&format!(
            "CREATE DATABASE {name} ENCODING 'SQL_ASCII' TEMPLATE template0 LC_COLLATE 'C' LC_CTYPE 'C'"
        ))
        .await
        .unwrap();
    let mut config: tokio_postgres::Config = database_url().parse().unwrap();
    config.dbname(&name);
    let result = pglane::migrate(config, "pglane").await;
    let err = result.expect_err("a SQL_ASCII database was migrated");
    match &err {
        Error::UnsupportedEncoding { database, encoding } => {
            assert_eq!(
                (database.as_str(), encoding.as_str()),
                (name.as_str(), "SQL_ASCII")
            );
        }
        other => panic!("expected UnsupportedEncoding, got {other:?}"),
    }
    assert!(err.to_string().contains("UTF8"), "{err}");
    admin
        .batch_execute(&format!("DROP DATABASE {name} WITH (FORCE)"))
        .await
        .unwrap();
}

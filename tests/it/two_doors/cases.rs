//! The table of cases: every limit of `pglane::validate`, at and just past its bound,
//! plus inputs only SQL can express.

use std::time::{Duration, SystemTime};

use pglane::validate::{MAX_ARGS_BYTES, MAX_ARGS_DEPTH, MAX_SCHEDULE_AHEAD, MAX_UNIQUE_KEY_BYTES};
use serde_json::{json, Value};

use super::doors::{K255, K256};

#[derive(Debug, Clone)]
pub(super) enum Args {
    /// The same JSON through both doors.
    Json(Value),
    /// `Float { n }` in Rust; in SQL the given text (the nearest jsonb can say).
    Float(f64, &'static str),
}

#[derive(Debug, Clone)]
pub(super) enum When {
    At(SystemTime),
    /// SQL only (`'infinity'`): Rust's `SystemTime` has no such value.
    SqlOnly(&'static str),
}

#[derive(Debug, Clone)]
pub(super) enum Wait {
    Secs(u64),
    /// SQL only (a negative interval): Rust's `Duration` cannot be negative.
    SqlOnly(&'static str),
}

#[derive(Debug, Clone)]
pub(super) struct Input {
    pub(super) kind: &'static str,
    pub(super) args: Args,
    pub(super) priority: Option<i64>,
    pub(super) run_at: Option<When>,
    pub(super) delay: Option<Wait>,
    pub(super) max_attempts: Option<i64>,
    pub(super) queue: Option<String>,
    pub(super) unique_key: Option<String>,
    pub(super) timeout_ms: Option<i64>,
}

pub(super) fn input() -> Input {
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

pub(super) struct Case {
    pub(super) what: String,
    pub(super) ok: bool,
    pub(super) input: Input,
    /// The SQLSTATE the SQL door rejects with (22023 from the function unless jsonb
    /// itself refuses the value first).
    pub(super) sql_code: &'static str,
}

pub(super) fn case(what: impl Into<String>, ok: bool, input: Input) -> Case {
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

pub(super) fn cases(now: SystemTime) -> Vec<Case> {
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

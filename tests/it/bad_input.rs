//! Bad input gets a typed error and writes nothing, from Rust and from SQL; a bad engine
//! configuration is refused before anything starts.

use std::time::{Duration, SystemTime};

use pglane::validate::{MAX_ARGS_BYTES, MAX_ARGS_DEPTH};
use pglane::{Engine, Enqueue, Error, Job, JobContext, JobError, Lane, Rejection};
use serde::{Deserialize, Serialize};
use serde_json::json;

use crate::support::*;

/// Args with every shape a caller might get wrong. Never registered, so never run.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Doc {
    text: String,
    num: f64,
    tree: serde_json::Value,
}

impl Job for Doc {
    const KIND: &'static str = "doc";
    async fn run(self, _: JobContext) -> Result<(), JobError> {
        Ok(())
    }
}

fn doc() -> Doc {
    Doc {
        text: "ok".into(),
        num: 1.5,
        tree: json!({"a": [1, 2]}),
    }
}

/// `levels` arrays nested inside each other.
fn nested(levels: usize) -> serde_json::Value {
    (0..levels).fold(json!(0), |v, _| json!([v]))
}

/// A named bad job and the rejection it must get.
type Case = (&'static str, Enqueue<Doc>, fn(&Rejection) -> bool);

fn rejection(r: pglane::Result<i64>) -> Rejection {
    match r {
        Err(Error::InvalidJob(r)) => r,
        other => panic!("expected a rejection, got {other:?}"),
    }
}

#[actix_rt::test]
async fn rust_enqueue_rejects_bad_input_and_writes_nothing() {
    let db = TestDb::new().await;
    let engine = db.engine().register::<Probe>().start().await.unwrap();
    let e = |d: Doc| Enqueue::new(d);
    let with = |f: fn(&mut Doc)| {
        let mut d = doc();
        f(&mut d);
        Enqueue::new(d)
    };

    let cases: Vec<Case> = vec![
        ("NUL in a string", with(|d| d.text = "a\0b".into()), |r| {
            *r == Rejection::NulInArgs
        }),
        (
            "NUL in a map key",
            with(|d| d.tree = json!({"k\u{0}": 1})),
            |r| *r == Rejection::NulInArgs,
        ),
        ("NaN", with(|d| d.num = f64::NAN), |r| {
            *r == Rejection::NonFiniteNumber
        }),
        ("+infinity", with(|d| d.num = f64::INFINITY), |r| {
            *r == Rejection::NonFiniteNumber
        }),
        ("-infinity", with(|d| d.num = f64::NEG_INFINITY), |r| {
            *r == Rejection::NonFiniteNumber
        }),
        (
            "args over the size cap",
            with(|d| d.text = "x".repeat(MAX_ARGS_BYTES)),
            |r| matches!(r, Rejection::ArgsTooLarge { max, .. } if *max == MAX_ARGS_BYTES),
        ),
        (
            "args nested too deep",
            with(|d| d.tree = nested(MAX_ARGS_DEPTH)),
            |r| matches!(r, Rejection::ArgsTooDeep { max } if *max == MAX_ARGS_DEPTH),
        ),
        ("negative priority", e(doc()).priority(-1), |r| {
            *r == Rejection::PriorityOutOfRange(-1)
        }),
        // A priority over 32767 cannot be written: priorities are i16 in Rust.
        (
            "lowest negative priority",
            e(doc()).priority(i16::MIN),
            |r| *r == Rejection::PriorityOutOfRange(i64::from(i16::MIN)),
        ),
        (
            "run_at in year 9999",
            // 9999-01-01T00:00:00Z
            e(doc()).run_at(SystemTime::UNIX_EPOCH + Duration::from_secs(253_370_764_800)),
            |r| matches!(r, Rejection::ScheduleOutOfRange(_)),
        ),
        (
            "delay over 10 years",
            e(doc()).delay(Duration::from_secs(11 * 366 * 24 * 3600)),
            |r| matches!(r, Rejection::ScheduleOutOfRange(_)),
        ),
        ("max_attempts 0", e(doc()).max_attempts(0), |r| {
            *r == Rejection::MaxAttemptsOutOfRange(0)
        }),
        ("max_attempts -1", e(doc()).max_attempts(-1), |r| {
            *r == Rejection::MaxAttemptsOutOfRange(-1)
        }),
        ("zero timeout", e(doc()).timeout(Duration::ZERO), |r| {
            matches!(r, Rejection::TimeoutOutOfRange(_))
        }),
        ("empty queue", e(doc()).queue(""), |r| {
            matches!(r, Rejection::InvalidName { what: "queue", .. })
        }),
        ("mixed-case queue", e(doc()).queue("Mail"), |r| {
            matches!(r, Rejection::InvalidName { what: "queue", .. })
        }),
        ("quoted queue", e(doc()).queue("ma\"il"), |r| {
            matches!(r, Rejection::InvalidName { what: "queue", .. })
        }),
        ("queue with a semicolon", e(doc()).queue("a;drop"), |r| {
            matches!(r, Rejection::InvalidName { what: "queue", .. })
        }),
        ("queue over 63 bytes", e(doc()).queue("q".repeat(64)), |r| {
            matches!(r, Rejection::InvalidName { what: "queue", .. })
        }),
        ("empty unique key", e(doc()).unique_key(""), |r| {
            matches!(r, Rejection::InvalidName { .. })
        }),
    ];
    let mut client = connect(&db.url).await;
    for (what, job, expected) in cases {
        let r = rejection(engine.enqueue(job.clone()).await);
        assert!(expected(&r), "{what}: unexpected rejection {r:?}");
        // The same through the supervisor, in bulk, and in the caller's transaction.
        let r = rejection(engine.supervisor().send(job.clone()).await.unwrap());
        assert!(expected(&r), "{what} via the supervisor: {r:?}");
        let bulk = engine.enqueue_many([e(doc()), job.clone(), e(doc())]).await;
        assert!(
            matches!(bulk, Err(Error::InvalidJob(_))),
            "{what} in bulk: {bulk:?}"
        );
        let tx = client.transaction().await.unwrap();
        let r = rejection(engine.enqueue_tx(&tx, job).await);
        assert!(expected(&r), "{what} in a transaction: {r:?}");
        tx.commit().await.unwrap();
        assert_eq!(db.count("true").await, 0, "{what}: something was written");
    }

    // The limits themselves are accepted: 63 levels inside the struct (64 in all), the
    // priority bounds, a schedule just within 10 years.
    let edge = engine
        .enqueue_many([
            with(|d| d.tree = nested(MAX_ARGS_DEPTH - 1)),
            e(doc()).priority(0),
            e(doc()).priority(32767),
            e(doc()).delay(Duration::from_secs(9 * 366 * 24 * 3600)),
        ])
        .await
        .unwrap();
    assert_eq!(edge.len(), 4);
    assert_eq!(db.count("kind = 'doc'").await, 4);

    engine.shutdown().await.unwrap();
    db.cleanup().await;
}

#[actix_rt::test]
async fn sql_function_rejects_bad_input_and_writes_nothing() {
    let db = TestDb::new().await;
    let cases = [
        ("priority -1", "'probe', '{}', priority => -1"),
        ("priority 32768", "'probe', '{}', priority => 32768"),
        ("infinite run_at", "'probe', '{}', run_at => 'infinity'"),
        ("run_at in 9999", "'probe', '{}', run_at => '9999-01-01'"),
        ("delay of 11 years", "'probe', '{}', delay => '11 years'"),
        ("NULL kind", "NULL, '{}'"),
        ("empty kind", "'', '{}'"),
        ("kind with a quote", "'pro''be', '{}'"),
        ("NULL args", "'probe', NULL"),
        ("mixed-case queue", "'probe', '{}', queue => 'Mail'"),
        ("queue with a semicolon", "'probe', '{}', queue => 'a;b'"),
        ("empty queue", "'probe', '{}', queue => ''"),
        ("max_attempts 0", "'probe', '{}', max_attempts => 0"),
        ("timeout 0", "'probe', '{}', timeout_ms => 0"),
        ("empty unique key", "'probe', '{}', unique_key => ''"),
    ];
    for (what, call) in cases {
        let sql = format!("SELECT \"{}\".enqueue({call})", db.schema);
        let err = db
            .client
            .query_one(&sql, &[])
            .await
            .err()
            .unwrap_or_else(|| panic!("{what}: accepted"));
        let db_err = err.as_db_error().expect("a database error");
        assert_eq!(db_err.code().code(), "22023", "{what}: {db_err:?}");
        assert!(
            db_err.message().starts_with("pglane: "),
            "{what}: {}",
            db_err.message()
        );
    }
    assert_eq!(db.count("true").await, 0);
    db.cleanup().await;
}

#[actix_rt::test]
async fn invalid_engine_config_is_refused() {
    let db = TestDb::new().await;
    let config_error = |r: pglane::Result<Engine>, needle: &str| match r {
        Err(Error::InvalidConfig(msg)) => {
            assert!(msg.contains(needle), "{msg:?} should mention {needle:?}")
        }
        Err(other) => panic!("expected InvalidConfig mentioning {needle:?}, got {other:?}"),
        Ok(_) => panic!("expected InvalidConfig mentioning {needle:?}, got an engine"),
    };
    let base = || db.engine().register::<Probe>();

    let overlap = base()
        .lane(Lane::new("a").priorities(0..=10))
        .lane(Lane::new("b").priorities(10..))
        .start()
        .await;
    config_error(overlap, "overlap");
    let gap = base()
        .lane(Lane::new("a").priorities(0..=9))
        .lane(Lane::new("b").priorities(20..))
        .start()
        .await;
    config_error(gap, "10..=19");
    let uncovered = base().lane(Lane::new("a").priorities(0..=9)).start().await;
    config_error(uncovered, "not every priority");
    let zero_slots = base().lane(Lane::new("a").concurrency(0)).start().await;
    config_error(zero_slots, "concurrency");
    let bad_lane_name = base().lane(Lane::new("Urgent")).start().await;
    config_error(bad_lane_name, "lane");
    let empty_range = base().lane(Lane::new("a").priorities(5..5)).start().await;
    config_error(empty_range, "priority range");
    let zero_poll = base().poll_interval(Duration::ZERO).start().await;
    config_error(zero_poll, "poll_interval");
    let slow_calls = base().call_timeout(Duration::from_secs(60)).start().await;
    config_error(slow_calls, "call_timeout");
    for schema in ["Bad", "a;b", "a\"b", "", &"s".repeat(60)] {
        let r = base().schema(schema).start().await;
        config_error(r, "schema");
    }
    let bad_queue = base().queue("Mail").start().await;
    config_error(bad_queue, "queue");
    let nothing_registered = db.engine().start().await;
    config_error(nothing_registered, "register");

    assert_eq!(db.count("true").await, 0);
    db.cleanup().await;
}

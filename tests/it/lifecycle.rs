//! A job's life after it starts: retries with backoff, failure, snooze, cancel, panic,
//! schedules, and args that no longer decode.

use std::time::{Duration, SystemTime};

use pglane::{Backoff, Enqueue};

use crate::support::*;

/// Checks an error entry's shape: attempt, time, text and cause.
fn assert_error_entry(e: &serde_json::Value, attempt: i64, cause: &str, text: &str) {
    assert_eq!(e["attempt"].as_i64(), Some(attempt), "{e}");
    assert_eq!(e["cause"].as_str(), Some(cause), "{e}");
    assert!(e["at"].is_string(), "{e}");
    let error = e["error"].as_str().unwrap_or_default();
    assert!(error.contains(text), "{error:?} should contain {text:?}");
}

/// A job failing every attempt is retried with growing backoff, then fails for good
/// after `max_attempts`, with every failure recorded.
#[actix_rt::test]
async fn failing_job_retries_with_backoff_then_fails() {
    let db = TestDb::new().await;
    let mut events = Events::new();
    let engine = db
        .engine()
        .retry_backoff(Backoff {
            base: Duration::from_millis(200),
            max: Duration::from_secs(5),
            jitter: 0.0,
        })
        .register::<Probe>()
        .data(events.sender())
        .start()
        .await
        .unwrap();
    let id = engine
        .enqueue(Enqueue::new(Probe::behave("always", Behave::FailUntil(99))).max_attempts(3))
        .await
        .unwrap();
    let runs = events.take(3, Duration::from_secs(10)).await;
    let attempts: Vec<i32> = runs.iter().map(|e| e.attempt).collect();
    assert_eq!(attempts, [1, 2, 3]);
    assert!(runs.iter().all(|e| e.id == id));
    let gaps = [runs[1].at - runs[0].at, runs[2].at - runs[1].at];
    assert!(gaps[0] >= Duration::from_millis(200), "{gaps:?}");
    assert!(
        gaps[1] >= Duration::from_millis(400),
        "backoff doubles: {gaps:?}"
    );

    db.wait_count(
        &format!("id = {id} AND state = 'failed'"),
        1,
        Duration::from_secs(5),
    )
    .await;
    let rows = db
        .query(&format!(
            "SELECT attempt FROM {{schema}}.jobs_finished WHERE id = {id}"
        ))
        .await;
    assert_eq!(rows[0].get::<_, i32>(0), 3);
    let errors = errors_of(&db, id).await;
    assert_eq!(errors.len(), 3);
    for (i, e) in errors.iter().enumerate() {
        let n = i as i64 + 1;
        assert_error_entry(e, n, "error", &format!("failing attempt {n}"));
    }
    assert!(
        events.none_within(Duration::from_millis(500)).await,
        "no fourth attempt"
    );

    // A job that fails once then succeeds: completed on attempt 2, one error recorded.
    let id = engine
        .enqueue(Enqueue::new(Probe::behave("twice", Behave::FailUntil(2))).max_attempts(3))
        .await
        .unwrap();
    let runs = events.take(2, Duration::from_secs(10)).await;
    assert_eq!((runs[0].attempt, runs[1].attempt), (1, 2));
    db.wait_count(
        &format!("id = {id} AND state = 'completed' AND attempt = 2"),
        1,
        Duration::from_secs(5),
    )
    .await;
    let errors = errors_of(&db, id).await;
    assert_eq!(errors.len(), 1);
    assert_error_entry(&errors[0], 1, "error", "failing attempt 1");

    engine.shutdown().await.unwrap();
    db.cleanup().await;
}

/// A snoozed job runs again later without using an attempt.
#[actix_rt::test]
async fn snooze_runs_again_later_without_using_an_attempt() {
    let db = TestDb::new().await;
    let mut events = Events::new();
    let engine = db
        .engine()
        .register::<Probe>()
        .data(events.sender())
        .start()
        .await
        .unwrap();
    let id = engine
        .enqueue(Enqueue::new(Probe::behave("nap", Behave::SnoozeOnce(400))).max_attempts(1))
        .await
        .unwrap();
    let runs = events.take(2, Duration::from_secs(10)).await;
    assert!(runs.iter().all(|e| e.id == id));
    assert_eq!((runs[0].attempt, runs[1].attempt), (1, 1));
    let gap = runs[1].at - runs[0].at;
    assert!(gap >= Duration::from_millis(400), "snoozed for {gap:?}");
    db.wait_count(
        &format!("id = {id} AND state = 'completed' AND attempt = 1"),
        1,
        Duration::from_secs(5),
    )
    .await;
    assert!(errors_of(&db, id).await.is_empty(), "a snooze is no error");

    engine.shutdown().await.unwrap();
    db.cleanup().await;
}

/// A handler's cancel fails the job at once, whatever attempts remain.
#[actix_rt::test]
async fn handler_cancel_fails_at_once_with_its_reason() {
    let db = TestDb::new().await;
    let mut events = Events::new();
    let engine = db
        .engine()
        .register::<Probe>()
        .data(events.sender())
        .start()
        .await
        .unwrap();
    let id = engine
        .enqueue(Enqueue::new(Probe::behave("nope", Behave::Cancel)).max_attempts(5))
        .await
        .unwrap();
    let e = events.next(Duration::from_secs(5)).await;
    assert_eq!((e.id, e.attempt), (id, 1));
    db.wait_count(
        &format!("id = {id} AND state = 'failed' AND attempt = 1"),
        1,
        Duration::from_secs(5),
    )
    .await;
    let errors = errors_of(&db, id).await;
    assert_eq!(errors.len(), 1);
    assert_error_entry(&errors[0], 1, "cancel", "not wanted");
    assert!(events.none_within(Duration::from_millis(400)).await);

    engine.shutdown().await.unwrap();
    db.cleanup().await;
}

/// A panic is a failed attempt with its message recorded; the engine keeps running other
/// jobs and the panicked run's slot is freed.
#[actix_rt::test]
async fn panic_is_a_failed_attempt_and_frees_its_slot() {
    let db = TestDb::new().await;
    let mut events = Events::new();
    let engine = db
        .engine()
        .lane(pglane::Lane::new("only").concurrency(2))
        .register::<Probe>()
        .data(events.sender())
        .start()
        .await
        .unwrap();
    let boom = engine
        .enqueue(Enqueue::new(Probe::behave("boom", Behave::Panic)).max_attempts(2))
        .await
        .unwrap();
    let runs = events.take(2, Duration::from_secs(10)).await;
    assert_eq!((runs[0].attempt, runs[1].attempt), (1, 2));
    db.wait_count(
        &format!("id = {boom} AND state = 'failed' AND attempt = 2"),
        1,
        Duration::from_secs(5),
    )
    .await;
    let errors = errors_of(&db, boom).await;
    assert_eq!(errors.len(), 2);
    for (i, e) in errors.iter().enumerate() {
        assert_error_entry(
            e,
            i as i64 + 1,
            "panic",
            "handler panicked: probe boom panicked on purpose",
        );
    }

    // Slots were not leaked: more jobs than slots still all run.
    let ok = (0..6).map(|i| Enqueue::new(Probe::new(format!("ok{i}"))));
    engine.enqueue_many(ok).await.unwrap();
    events.take(6, Duration::from_secs(10)).await;
    db.wait_count("state = 'completed'", 6, Duration::from_secs(5))
        .await;
    wait_stats(&engine, "no running jobs", Duration::from_secs(5), |s| {
        s.lanes[0].running == 0
    })
    .await;

    engine.shutdown().await.unwrap();
    db.cleanup().await;
}

/// A scheduled job does not start before its run_at (by the database clock), then runs.
#[actix_rt::test]
async fn scheduled_jobs_wait_for_their_time() {
    let db = TestDb::new().await;
    let mut events = Events::new();
    let engine = db
        .engine()
        .register::<Probe>()
        .data(events.sender())
        .start()
        .await
        .unwrap();
    let delayed = engine
        .enqueue(Enqueue::new(Probe::new("delayed")).delay(Duration::from_millis(800)))
        .await
        .unwrap();
    let at = engine
        .enqueue(
            Enqueue::new(Probe::new("at")).run_at(SystemTime::now() + Duration::from_millis(1200)),
        )
        .await
        .unwrap();
    let due = db
        .query(&format!(
            "SELECT count(*) FROM {{schema}}.jobs WHERE id IN ({delayed}, {at}) \
               AND run_at > now() + interval '500 ms'"
        ))
        .await;
    assert_eq!(due[0].get::<_, i64>(0), 2, "both are scheduled ahead");
    assert!(
        events.none_within(Duration::from_millis(400)).await,
        "nothing runs early"
    );

    let runs = events.take(2, Duration::from_secs(10)).await;
    let mut ids = [runs[0].id, runs[1].id];
    ids.sort();
    assert_eq!(ids, [delayed, at]);
    db.wait_count(
        &format!("id IN ({delayed}, {at}) AND state = 'completed'"),
        2,
        Duration::from_secs(5),
    )
    .await;
    // The database's own clock: each started at or after its run_at, and each run_at is
    // as far after its creation as asked.
    let rows = db
        .query(&format!(
            "SELECT id, started_at >= run_at, \
                    extract(epoch FROM run_at - created_at)::float8 \
             FROM {{schema}}.jobs_finished WHERE id IN ({delayed}, {at}) ORDER BY id"
        ))
        .await;
    for r in &rows {
        assert!(
            r.get::<_, bool>(1),
            "job {} started early",
            r.get::<_, i64>(0)
        );
    }
    let ahead = rows[0].get::<_, f64>(2);
    assert!((0.79..1.0).contains(&ahead), "delay stored as {ahead}s");

    engine.shutdown().await.unwrap();
    db.cleanup().await;
}

/// Stored args that no longer deserialize are a failed attempt (retried, then failed
/// with the reason), and the engine keeps running.
#[actix_rt::test]
async fn undecodable_args_fail_with_the_reason() {
    let db = TestDb::new().await;
    let mut events = Events::new();
    let engine = db
        .engine()
        .register::<Probe>()
        .data(events.sender())
        .start()
        .await
        .unwrap();
    let rows = db
        .query("SELECT {schema}.enqueue('probe', '{\"bogus\": 1}', max_attempts => 2)")
        .await;
    let id: i64 = rows[0].get(0);
    db.wait_count(
        &format!("id = {id} AND state = 'failed' AND attempt = 2"),
        1,
        Duration::from_secs(10),
    )
    .await;
    let errors = errors_of(&db, id).await;
    assert_eq!(errors.len(), 2, "retried once, then failed");
    for (i, e) in errors.iter().enumerate() {
        assert_error_entry(e, i as i64 + 1, "error", "do not deserialize as `probe`");
    }
    assert!(
        events.none_within(Duration::from_millis(100)).await,
        "the handler never ran"
    );

    let ok = engine
        .enqueue(Enqueue::new(Probe::new("still-alive")))
        .await
        .unwrap();
    let e = events.next(Duration::from_secs(5)).await;
    assert_eq!(e.id, ok);
    db.wait_count(
        &format!("id = {ok} AND state = 'completed'"),
        1,
        Duration::from_secs(5),
    )
    .await;

    engine.shutdown().await.unwrap();
    db.cleanup().await;
}

/// A run past its timeout is a failed attempt (cause `timeout`) and frees its slot.
#[actix_rt::test]
async fn timed_out_run_is_a_failed_attempt() {
    let db = TestDb::new().await;
    let mut events = Events::new();
    let engine = db
        .engine()
        .lane(pglane::Lane::new("only").concurrency(1))
        .register::<Probe>()
        .data(events.sender())
        .start()
        .await
        .unwrap();
    let id = engine
        .enqueue(
            Enqueue::new(Probe::behave("stuck", Behave::SleepMs(60_000)))
                .timeout(Duration::from_millis(300))
                .max_attempts(2),
        )
        .await
        .unwrap();
    let runs = events.take(2, Duration::from_secs(10)).await;
    assert_eq!((runs[0].attempt, runs[1].attempt), (1, 2));
    assert!(runs[1].at - runs[0].at >= Duration::from_millis(300));
    db.wait_count(
        &format!("id = {id} AND state = 'failed' AND attempt = 2"),
        1,
        Duration::from_secs(5),
    )
    .await;
    let errors = errors_of(&db, id).await;
    assert_eq!(errors.len(), 2);
    assert_error_entry(&errors[0], 1, "timeout", "timed out");
    // The slot is free again: the next job runs on the single slot.
    let next = engine
        .enqueue(Enqueue::new(Probe::new("after")))
        .await
        .unwrap();
    let e = events.next(Duration::from_secs(5)).await;
    assert_eq!(e.id, next);
    engine.shutdown().await.unwrap();
    db.cleanup().await;
}

/// With a zero `completed_retention` a completed job is deleted without a copy in
/// `jobs_finished`; a failed one is still kept (its own retention applies).
#[actix_rt::test]
async fn zero_completed_retention_keeps_no_copy_of_completed_jobs() {
    let db = TestDb::new().await;
    let mut events = Events::new();
    let engine = db
        .engine()
        .completed_retention(Duration::ZERO)
        .register::<Probe>()
        .data(events.sender())
        .start()
        .await
        .unwrap();
    let done = engine
        .enqueue(Enqueue::new(Probe::new("ok")))
        .await
        .unwrap();
    let failed = engine
        .enqueue(Enqueue::new(Probe::behave("bad", Behave::FailUntil(99))).max_attempts(1))
        .await
        .unwrap();
    events.take(2, Duration::from_secs(10)).await;
    db.wait_count(
        &format!("id = {failed} AND state = 'failed'"),
        1,
        Duration::from_secs(5),
    )
    .await;
    db.wait_count(&format!("id = {done}"), 0, Duration::from_secs(5))
        .await;
    let finished = db
        .query("SELECT id, state FROM {schema}.jobs_finished")
        .await;
    assert_eq!(finished.len(), 1, "only the failed job is kept");
    assert_eq!(finished[0].get::<_, i64>(0), failed);
    engine.shutdown().await.unwrap();
    db.cleanup().await;
}

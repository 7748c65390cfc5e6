//! Graceful shutdown: running jobs finish within the grace period or are handed back
//! without using an attempt, and nothing new is claimed once shutdown begins.

use std::time::{Duration, SystemTime};

use pglane::{Enqueue, Lane};

use crate::support::*;

/// Jobs running at shutdown finish within the grace period and are completed; jobs
/// still waiting are not claimed, even as slots free up.
#[actix_rt::test]
async fn running_jobs_finish_within_grace_and_nothing_new_is_claimed() {
    let db = TestDb::new().await;
    let mut events = Events::new();
    let engine = db
        .engine()
        .lane(Lane::new("only").concurrency(3))
        .register::<Probe>()
        .data(events.sender())
        .start()
        .await
        .unwrap();
    let jobs = (0..8).map(|i| Enqueue::new(Probe::behave(format!("s{i}"), Behave::SleepMs(700))));
    let ids = engine.enqueue_many(jobs).await.unwrap();
    let running: Vec<i64> = events
        .take(3, Duration::from_secs(5))
        .await
        .iter()
        .map(|e| e.id)
        .collect();

    let during = engine.clone();
    let report = engine
        .shutdown_within(Duration::from_secs(10))
        .await
        .unwrap();
    assert_eq!((report.finished, report.released), (3, 0));
    // Enqueueing still works (it is only a write); the stopped engine claims nothing.
    let late = during
        .enqueue(Enqueue::new(Probe::new("late")))
        .await
        .unwrap();

    let done = running
        .iter()
        .map(|id| id.to_string())
        .collect::<Vec<_>>()
        .join(",");
    assert_eq!(
        db.count(&format!("id IN ({done}) AND state = 'completed'"))
            .await,
        3,
        "outcomes are written before shutdown returns"
    );
    assert_eq!(
        db.count("state = 'available' AND attempt = 0").await,
        6,
        "the 5 waiting jobs and the late one were never claimed"
    );
    assert!(events.none_within(Duration::from_millis(500)).await);
    assert!(ids.contains(&running[0]) && late > *ids.last().unwrap());
    db.cleanup().await;
}

/// A job still running when the grace period ends is released back to `available` with
/// its attempt given back.
#[actix_rt::test]
async fn job_outliving_the_grace_is_released_with_its_attempt_back() {
    let db = TestDb::new().await;
    let mut events = Events::new();
    let engine = db
        .engine()
        .lane(Lane::new("only").concurrency(2))
        .register::<Probe>()
        .data(events.sender())
        .start()
        .await
        .unwrap();
    let slow = engine
        .enqueue(Enqueue::new(Probe::behave("slow", Behave::SleepMs(30_000))))
        .await
        .unwrap();
    let quick = engine
        .enqueue(Enqueue::new(Probe::behave("quick", Behave::SleepMs(100))))
        .await
        .unwrap();
    events.take(2, Duration::from_secs(5)).await;
    let run_at_before = db
        .query(&format!(
            "SELECT run_at FROM {{schema}}.jobs WHERE id = {slow}"
        ))
        .await[0]
        .get::<_, SystemTime>(0);

    let report = engine
        .shutdown_within(Duration::from_millis(600))
        .await
        .unwrap();
    assert_eq!((report.finished, report.released), (1, 1));
    let rows = db
        .query(&format!(
            "SELECT state, attempt, lease_token IS NULL, jsonb_array_length(errors), rescues \
             FROM {{schema}}.jobs WHERE id = {slow}"
        ))
        .await;
    let r = &rows[0];
    assert_eq!(r.get::<_, String>(0), "available");
    assert_eq!(r.get::<_, i32>(1), 0, "the attempt was given back");
    assert!(r.get::<_, bool>(2), "no lease left behind");
    assert_eq!(r.get::<_, i32>(3), 0, "a release is no error");
    assert_eq!(r.get::<_, i32>(4), 0, "a release is no rescue");
    let run_at_after = db
        .query(&format!(
            "SELECT run_at FROM {{schema}}.jobs WHERE id = {slow}"
        ))
        .await[0]
        .get::<_, SystemTime>(0);
    assert_eq!(
        run_at_after, run_at_before,
        "a released job keeps its place in line"
    );
    assert_eq!(
        db.count(&format!("id = {quick} AND state = 'completed'"))
            .await,
        1
    );

    // Another engine picks the released job up as a fresh first attempt.
    let mut events2 = Events::new();
    let next = db
        .engine()
        .register::<Probe>()
        .data(events2.sender())
        .start()
        .await
        .unwrap();
    let e = events2.next(Duration::from_secs(5)).await;
    assert_eq!((e.id, e.attempt), (slow, 1));
    next.shutdown_within(Duration::from_millis(50))
        .await
        .unwrap();
    db.cleanup().await;
}

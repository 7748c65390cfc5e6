//! A handler that blocks its thread (`std::thread::sleep` for an hour, far past its 1 s
//! timeout) costs at most its own slot: the engine finds the thread stuck at the
//! timeout, writes the attempt off as `stuck`, replaces the thread, and fails the job
//! like a poison pill on its `max_rescues`-th stuck run. An engine left with no usable
//! thread claims nothing and hands back what it could not start, so another engine on
//! the schema takes it. The blocked threads are leaked by design: they block neither
//! engine shutdown nor the test process's exit.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use pglane::{Enqueue, Lane};

use super::*;
use crate::support::*;

const HOUR_MS: u64 = 3_600_000;

fn blocker() -> Enqueue<Probe> {
    Enqueue::new(Probe::behave("block", Behave::BlockMs(HOUR_MS)))
        .priority(0)
        .timeout(Duration::from_secs(1))
}

fn ordinary(n: usize) -> impl Iterator<Item = Enqueue<Probe>> {
    (0..n).map(|i| Enqueue::new(Probe::behave(format!("ok{i}"), Behave::SleepMs(5))).priority(100))
}

/// Waits until the blocking job is failed for good, and checks why.
async fn assert_failed_as_stuck(db: &TestDb, id: i64, limit: usize) {
    db.wait_count(
        &format!("id = {id} AND state = 'failed'"),
        1,
        Duration::from_secs(30),
    )
    .await;
    let errors = errors_of(db, id).await;
    assert_eq!(errors.len(), limit, "{errors:?}");
    assert!(errors.iter().all(|e| e["cause"] == "stuck"), "{errors:?}");
    let last = errors[limit - 1]["error"].as_str().unwrap_or("");
    assert!(
        last.contains("blocking its handler thread")
            && last.contains(&format!("{limit} times: failed as a poison pill")),
        "{last}"
    );
}

/// Every ordinary job started exactly once (across engines) and completed on attempt 1.
async fn assert_each_ran_once(db: &TestDb, ids: &[i64], starts: &HashMap<i64, u32>) {
    for id in ids {
        assert_eq!(
            starts.get(id),
            Some(&1),
            "job {id} started {:?} times",
            starts.get(id)
        );
    }
    assert_eq!(
        db.count("args->>'tag' LIKE 'ok%' AND state = 'completed' AND attempt = 1")
            .await,
        ids.len() as i64
    );
}

#[actix_rt::test]
async fn a_thread_blocking_job_costs_only_its_slot() {
    let db = TestDb::new().await;
    let mut events = Events::new();
    let starts = Starts::default();
    let engine = db
        .engine()
        .lane(Lane::new("default").concurrency(4))
        .handler_threads(2)
        .max_rescues(2)
        .register::<Probe>()
        .data(events.sender())
        .data(starts.clone())
        .start()
        .await
        .unwrap();
    let blocking = engine.enqueue(blocker()).await.unwrap();
    let first = events.next(Duration::from_secs(5)).await;
    assert_eq!(first.id, blocking);
    let ids = engine.enqueue_many(ordinary(200)).await.unwrap();

    let s = wait_stats(
        &engine,
        "the stuck thread replaced",
        Duration::from_secs(10),
        |s| s.handlers.replaced >= 1,
    )
    .await;
    metric(
        "stuck",
        "blocked thread (timeout 1 s) found stuck and replaced after",
        first.at.elapsed(),
    );
    assert_eq!(s.handlers.usable_threads, 2, "{s:?}");
    assert!(s.lanes[0].stuck >= 1, "the stuck run keeps its slot: {s:?}");

    db.wait_count(
        "args->>'tag' LIKE 'ok%' AND state = 'completed'",
        200,
        Duration::from_secs(60),
    )
    .await;
    metric(
        "stuck",
        "200 ordinary jobs done after the blocking one started",
        first.at.elapsed(),
    );
    assert_failed_as_stuck(&db, blocking, 2).await;
    assert_each_ran_once(&db, &ids, &starts.snapshot()).await;
    let s = engine.stats().await.unwrap();
    assert_eq!(
        (
            s.handlers.stuck_threads,
            s.lanes[0].stuck,
            s.handlers.usable_threads
        ),
        (2, 2, 2),
        "both stuck runs still hold their slots, and both threads were replaced: {s:?}"
    );

    // Shutdown does not wait for the stuck threads (their outcomes are written).
    let stopping = Instant::now();
    let report = engine
        .shutdown_within(Duration::from_secs(20))
        .await
        .unwrap();
    assert_eq!(report.released, 0);
    assert!(
        stopping.elapsed() < Duration::from_secs(10),
        "shutdown took {:?}",
        stopping.elapsed()
    );
    db.cleanup().await;
}

#[actix_rt::test]
async fn a_second_engine_is_never_kept_from_jobs_the_first_cannot_run() {
    let db = TestDb::new().await;
    let mut events = Events::new();
    let starts = Starts::default();
    // One handler thread and no replacement: once it is stuck, this engine can start
    // nothing at all.
    let crippled = db
        .engine()
        .lane(Lane::new("default").concurrency(8))
        .handler_threads(1)
        .max_stuck_threads(0)
        .max_rescues(2)
        .worker_id("crippled")
        .register::<Probe>()
        .data(events.sender())
        .data(starts.clone())
        .start()
        .await
        .unwrap();
    let blocking = crippled.enqueue(blocker()).await.unwrap();
    assert_eq!(events.next(Duration::from_secs(5)).await.id, blocking);
    // Claimed by the crippled engine before it notices, and never started there.
    let ids = crippled.enqueue_many(ordinary(200)).await.unwrap();
    let healthy = db
        .engine()
        .lane(Lane::new("default").concurrency(8))
        .max_rescues(2)
        .worker_id("healthy")
        .register::<Probe>()
        .data(starts.clone())
        .start()
        .await
        .unwrap();

    let s = wait_stats(
        &crippled,
        "no usable thread left",
        Duration::from_secs(10),
        |s| s.handlers.usable_threads == 0,
    )
    .await;
    assert_eq!(s.handlers.stuck_threads, 1, "{s:?}");
    let started = Instant::now();
    db.wait_count(
        "args->>'tag' LIKE 'ok%' AND state = 'completed'",
        200,
        Duration::from_secs(60),
    )
    .await;
    metric(
        "stuck",
        "200 jobs done by the healthy engine after the other lost its only thread",
        started.elapsed(),
    );
    assert_eq!(
        db.count("args->>'tag' LIKE 'ok%' AND worker_id = 'crippled'")
            .await,
        0,
        "the crippled engine completed nothing: it started nothing"
    );
    // Its second stuck run (on the healthy engine) fails it.
    assert_failed_as_stuck(&db, blocking, 2).await;
    assert_each_ran_once(&db, &ids, &starts.snapshot()).await;
    assert_eq!(
        db.count("state = 'running'").await,
        0,
        "no job is held under a lease"
    );

    for engine in [crippled, healthy] {
        engine
            .shutdown_within(Duration::from_secs(5))
            .await
            .unwrap();
    }
    db.cleanup().await;
}

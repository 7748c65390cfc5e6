//! Lanes that opt in to prefetch: held jobs are shown in stats and handed back (attempt
//! given back, place in line kept) on pause, lowered concurrency and shutdown.

use std::time::Duration;

use pglane::{Engine, Enqueue, Lane};

use crate::support::*;

/// A one-slot lane holding up to 3 jobs ready, over 5 jobs that each sleep `ms`.
async fn holding(db: &TestDb, events: &Events, slots: u32, ms: u64) -> Engine {
    let engine = db
        .engine()
        .lane(Lane::new("only").concurrency(slots).prefetch(3))
        .register::<Probe>()
        .data(events.sender())
        .start()
        .await
        .unwrap();
    let jobs = (0..5).map(|i| Enqueue::new(Probe::behave(format!("j{i}"), Behave::SleepMs(ms))));
    engine.enqueue_many(jobs).await.unwrap();
    wait_stats(&engine, "3 jobs held ready", Duration::from_secs(10), |s| {
        s.lanes[0].prefetched == 3
    })
    .await;
    engine
}

/// The run_at of every job, by id: a handed-back job keeps its place in line.
async fn run_ats(db: &TestDb) -> Vec<(i64, std::time::SystemTime)> {
    db.query("SELECT id, run_at FROM {schema}.jobs ORDER BY id")
        .await
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect()
}

#[actix_rt::test]
async fn held_jobs_are_leased_shown_and_handed_back_on_pause() {
    let db = TestDb::new().await;
    let mut events = Events::new();
    let before = {
        let engine = holding(&db, &events, 1, 3000).await;
        let s = engine.stats().await.unwrap();
        assert_eq!((s.lanes[0].running, s.lanes[0].prefetch), (1, 3));
        // Held jobs are claimed and leased: 4 running in the table, 1 available.
        assert_eq!(db.count("state = 'running' AND attempt = 1").await, 4);
        let before = run_ats(&db).await;
        engine.pause("only").await.unwrap();
        db.wait_count(
            "state = 'available' AND attempt = 0",
            4,
            Duration::from_secs(5),
        )
        .await;
        assert_eq!(engine.stats().await.unwrap().lanes[0].prefetched, 0);
        engine
            .shutdown_within(Duration::from_secs(10))
            .await
            .unwrap();
        before
    };
    assert_eq!(events.take(1, Duration::from_secs(1)).await.len(), 1);
    assert!(
        events.none_within(Duration::from_millis(100)).await,
        "only the running job started"
    );
    let after = run_ats(&db).await;
    assert_eq!(after.len(), 4);
    for (id, at) in after {
        let was = before.iter().find(|(b, _)| *b == id).map(|(_, t)| *t);
        assert_eq!(was, Some(at), "job {id} kept its place in line");
    }
    db.cleanup().await;
}

#[actix_rt::test]
async fn held_jobs_are_handed_back_on_lowered_concurrency_and_shutdown() {
    let db = TestDb::new().await;
    let events = Events::new();
    let engine = holding(&db, &events, 2, 3000).await;
    // 2 running, 3 held. Lowering hands the 3 back (the lane may then claim them
    // again, under new tokens, for its room): none stays held under its old lease.
    // The runs have the two lowest ids (same priority and run_at): the rest are held.
    let tokens: Vec<(i64, i64)> = db
        .query("SELECT id, lease_token FROM {schema}.jobs WHERE state = 'running' ORDER BY id OFFSET 2")
        .await
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect();
    assert_eq!(tokens.len(), 3, "{tokens:?}");
    engine.set_concurrency("only", 1).await.unwrap();
    wait_for(
        "the held leases to be given back",
        Duration::from_secs(5),
        || async {
            let now: Vec<(i64, Option<i64>)> = db
                .query("SELECT id, lease_token FROM {schema}.jobs")
                .await
                .iter()
                .map(|r| (r.get(0), r.get(1)))
                .collect();
            tokens
                .iter()
                .all(|(id, t)| !now.iter().any(|(i, n)| i == id && *n == Some(*t)))
        },
    )
    .await;
    let report = engine
        .shutdown_within(Duration::from_secs(10))
        .await
        .unwrap();
    assert_eq!(report.released, 0, "the two runs finished within the grace");
    // After shutdown nothing is held: the 3 jobs are available with no attempt used.
    db.wait_count(
        "state = 'available' AND attempt = 0",
        3,
        Duration::from_secs(5),
    )
    .await;
    db.wait_count("state = 'completed'", 2, Duration::from_secs(5))
        .await;
    db.cleanup().await;
}

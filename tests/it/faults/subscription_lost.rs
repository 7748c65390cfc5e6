//! The listener's subscription is lost silently: its connection stays up and healthy,
//! but no longer LISTENs, so every NOTIFY is missed without any error.
//!
//! No other session can UNLISTEN a connection, and killing it is not silent, so the
//! fault is injected with a hidden test hook (`Engine::drop_subscription_silently`) that
//! runs `UNLISTEN *` on the listener's own session behind its back, as a connection
//! pooler swapping server sessions or a stray `DISCARD ALL` would. The health check
//! (which reads `pg_listening_channels()`) must notice within one interval and
//! re-subscribe; jobs are then woken by NOTIFY again. Polls are 30 s apart, so a job
//! that starts sooner was woken by NOTIFY or by the reconnect's catch-up claim.

use std::time::{Duration, Instant};

use super::*;
use crate::support::*;

#[actix_rt::test]
async fn silently_lost_subscription_is_detected_and_restored() {
    let db = TestDb::new().await;
    let id = worker_id("unlisten");
    let tally = Tally::default();
    let health = Duration::from_secs(1);
    let engine = fault_engine(&db, &id, &tally)
        .poll_interval(Duration::from_secs(30))
        .poll_interval_without_listener(Duration::from_secs(30))
        .listener_health_interval(health)
        .start()
        .await
        .unwrap();
    wait_listening(&engine).await;
    let enqueue = format!("SELECT \"{}\".enqueue('work', '{{}}')", db.schema);
    let enqueue_job = || async {
        let job: i64 = db.client.query_one(&enqueue, &[]).await.unwrap().get(0);
        (job, Instant::now())
    };
    let wait_start = |job: i64, within: Duration| {
        let tally = tally.clone();
        async move {
            wait_for(&format!("job {job} to start"), within, || {
                let started = tally.started(job).is_some();
                async move { started }
            })
            .await;
        }
    };

    // NOTIFY works: a job starts at once.
    let (job, at) = enqueue_job().await;
    wait_start(job, Duration::from_secs(1)).await;
    metric(
        "subscription_lost",
        "wake by NOTIFY before the fault",
        tally.started(job).unwrap() - at,
    );

    let connects = engine.stats().await.unwrap().listener.connects;
    let listener = backends(&db.client, &id, &["listener"]).await;
    assert!(engine.drop_subscription_silently().await.unwrap());
    let dropped_at = Instant::now();
    let still_there: i64 = db
        .client
        .query_one(
            "SELECT count(*) FROM pg_stat_activity WHERE pid = $1",
            &[&listener[0].pid],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(
        still_there, 1,
        "the fault is silent: the connection stays up"
    );

    // The NOTIFY of this job falls on deaf ears; only the re-subscription's catch-up
    // claim finds it.
    let (missed, _) = enqueue_job().await;
    let s = wait_stats(
        &engine,
        "the lost subscription to be noticed",
        health + Duration::from_secs(1),
        |s| s.listener.connects > connects,
    )
    .await;
    let detected = dropped_at.elapsed();
    let reason = s.listener.last_error.clone().unwrap_or_default();
    assert!(reason.contains("subscription"), "reason: {reason:?}");
    wait_start(missed, Duration::from_secs(1)).await;
    metric("subscription_lost", "detected and re-subscribed", detected);
    metric(
        "subscription_lost",
        "job enqueued after the loss started",
        tally.started(missed).unwrap() - dropped_at,
    );
    let now = backends(&db.client, &id, &["listener"]).await;
    assert_eq!(now.len(), 1);
    assert_ne!(now[0].pid, listener[0].pid, "a new LISTEN connection");

    // NOTIFY wakes jobs again.
    for _ in 0..3 {
        let (job, at) = enqueue_job().await;
        wait_start(job, Duration::from_secs(1)).await;
        metric(
            "subscription_lost",
            "wake by NOTIFY after",
            tally.started(job).unwrap() - at,
        );
    }
    drained(&db.client, &db.schema, Duration::from_secs(10)).await;
    let audit = audit(&db.client, &db.schema, &[], &tally.executions()).await;
    assert_eq!(
        audit.reruns, 0,
        "the engine survived: no run of it was repeated"
    );
    assert_eq!(audit.completed, 5);
    engine.shutdown().await.unwrap();
    db.cleanup().await;
}

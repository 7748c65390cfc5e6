//! The listener's backend is killed (`pg_terminate_backend`): the listener reconnects at
//! once, and the catch-up claim after the new LISTEN finds a job whose NOTIFY was lost
//! while it was down. Polls are 30 s apart, so only the reconnect can wake the job.

use std::time::{Duration, Instant};

use super::*;
use crate::support::*;

#[actix_rt::test]
async fn killed_listener_reconnects_and_catches_up() {
    let db = TestDb::new().await;
    let id = worker_id("listener");
    let tally = Tally::default();
    let engine = fault_engine(&db, &id, &tally)
        .poll_interval(Duration::from_secs(30))
        .poll_interval_without_listener(Duration::from_secs(30))
        .start()
        .await
        .unwrap();
    wait_listening(&engine).await;
    let before = backends(&db.client, &id, &["listener"]).await;
    assert_eq!(before.len(), 1, "{before:?}");

    let enqueue = format!("SELECT \"{}\".enqueue('work', '{{}}')", db.schema);
    for round in 1..=3 {
        let old = backends(&db.client, &id, &["listener"]).await;
        let killed_at = Instant::now();
        terminate(&db.client, &id, &["listener"]).await;
        // Enqueued while the listener is (being) killed: its NOTIFY is lost.
        let job: i64 = db.client.query_one(&enqueue, &[]).await.unwrap().get(0);
        let enqueued_at = Instant::now();

        wait_for("a new listener backend", Duration::from_secs(2), || {
            let (db, id, old) = (&db, &id, &old);
            async move {
                let now = backends(&db.client, id, &["listener"]).await;
                now.len() == 1 && now[0].pid != old[0].pid
            }
        })
        .await;
        let reconnected = killed_at.elapsed();
        wait_for(
            "the job enqueued after the kill to start",
            Duration::from_secs(1),
            || {
                let started = tally.started(job).is_some();
                async move { started }
            },
        )
        .await;
        let latency = tally.started(job).unwrap() - enqueued_at;
        assert!(
            latency < Duration::from_secs(1),
            "round {round}: started after {latency:?}"
        );
        metric(
            "listener_killed",
            &format!("round {round} new listener backend"),
            reconnected,
        );
        metric(
            "listener_killed",
            &format!("round {round} job start after kill"),
            latency,
        );
    }
    let s = engine.stats().await.unwrap();
    assert_eq!(s.listener.connects, 4, "{s:?}");
    assert_eq!(s.listener.mode, pglane::ListenerMode::Notify);

    drained(&db.client, &db.schema, Duration::from_secs(10)).await;
    let audit = audit(&db.client, &db.schema, &[], &tally.executions()).await;
    assert_eq!(
        audit.reruns, 0,
        "the engine survived: no run of it was repeated"
    );
    assert_eq!(audit.completed, 3);
    engine.shutdown().await.unwrap();
    db.cleanup().await;
}

//! Every pooled backend of a draining engine is killed, three times, while jobs keep
//! arriving: throughput is back within 2 s each time, and every job is completed
//! exactly once with no attempt charged.

use std::time::Duration;

use super::*;
use crate::support::*;

#[actix_rt::test]
async fn killed_pool_backends_recover_within_two_seconds() {
    let db = TestDb::new().await;
    let id = worker_id("pool");
    let tally = Tally::default();
    let engine = fault_engine(&db, &id, &tally)
        .lane(pglane::Lane::new("default").concurrency(8))
        .start()
        .await
        .unwrap();
    wait_listening(&engine).await;
    let feeder = Feeder::start(
        &db.url,
        &db.schema,
        "work",
        r#"{"sleep_ms": 5}"#,
        5,
        Duration::from_millis(20),
    );
    wait_for("a steady flow", Duration::from_secs(10), || {
        let n = tally.runs().len();
        async move { n >= 100 }
    })
    .await;

    for round in 1..=3 {
        let at = server_now(&db.client).await;
        let killed = terminate(&db.client, &id, &["engine", "app"]).await;
        assert!(!killed.is_empty(), "the engine has pooled connections");
        let recovery = wait_some(
            "10 jobs claimed after the kill to complete",
            Duration::from_secs(3),
            || nth_completion_after(&db.client, &db.schema, at, 10),
        )
        .await;
        metric(
            "pool_killed",
            &format!(
                "round {round}: {} backends killed, throughput back",
                killed.len()
            ),
            recovery,
        );
        assert!(
            recovery < Duration::from_secs(2),
            "round {round}: {recovery:?}"
        );
        let fresh = backends(&db.client, &id, &["engine"]).await;
        assert!(
            fresh.iter().all(|b| killed.iter().all(|k| k.pid != b.pid)),
            "only new engine connections remain"
        );
    }

    let (acked, _) = feeder.stop().await;
    drained(&db.client, &db.schema, Duration::from_secs(20)).await;
    let audit = audit(&db.client, &db.schema, &acked, &tally.executions()).await;
    assert_eq!(
        audit.reruns, 0,
        "the engine survived: no run of it was repeated"
    );
    println!("pool_killed: {audit:?}, {} acknowledged", acked.len());
    let s = engine.stats().await.unwrap();
    assert!(s.database.available, "{s:?}");
    engine.shutdown().await.unwrap();
    db.cleanup().await;
}

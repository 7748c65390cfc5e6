//! The core pipeline: enqueue, claim, run, complete.

use std::time::Duration;

use pglane::Enqueue;

use crate::support::*;

#[actix_rt::test]
async fn enqueue_runs_and_completes() {
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
        .enqueue(Enqueue::new(Probe::new("hello")).priority(3))
        .await
        .unwrap();
    let e = events.next(Duration::from_secs(5)).await;
    assert_eq!(
        (e.id, e.tag.as_str(), e.attempt, e.priority),
        (id, "hello", 1, 3)
    );
    db.wait_count(
        &format!("id = {id} AND state = 'completed'"),
        1,
        Duration::from_secs(5),
    )
    .await;
    assert_eq!(db.count("true").await, 1);
    let report = engine.shutdown().await.unwrap();
    assert_eq!(report.released, 0);
    db.cleanup().await;
}

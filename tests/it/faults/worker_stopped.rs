//! A worker process is frozen (SIGSTOP) mid-job for longer than its lease, then thawed
//! (SIGCONT). Meanwhile another worker rescues and completes the job. The thawed worker
//! finishes its run too, but its outcome is fenced off by the lease token: the ledger
//! shows two executions, `jobs_finished` one completion, by the other worker.

use std::time::{Duration, SystemTime};

use super::worker_killed::spec;
use super::*;
use crate::support::*;

#[actix_rt::test]
async fn frozen_worker_outcome_is_fenced_off_after_another_completes() {
    let db = TestDb::new().await;
    create_ledger(&db.client, &db.schema).await;
    let a_name = worker_id("frozen-a");
    let b_name = worker_id("frozen-b");
    let a = Worker::start(&spec(&db, &a_name, "sleep:1500", 1)).await;
    let job: i64 = db.query("SELECT {schema}.enqueue('fault', '{}')").await[0].get(0);
    wait_for("A to start the job", Duration::from_secs(5), || {
        let db = &db;
        async move {
            !ledger(&db.client, &db.schema, &format!("job_id = {job}"))
                .await
                .is_empty()
        }
    })
    .await;
    a.signal("STOP");
    let frozen = server_now(&db.client).await;
    let b = Worker::start(&spec(&db, &b_name, "normal", 2)).await;

    db.wait_count(
        &format!("id = {job} AND state = 'completed'"),
        1,
        Duration::from_secs(10),
    )
    .await;
    let q = format!(
        "SELECT worker_id, finished_at, rescues FROM {{schema}}.jobs_finished WHERE id = {job}"
    );
    let row = &db.query(&q).await[0];
    let (by, finished, rescues): (String, SystemTime, i32) = (row.get(0), row.get(1), row.get(2));
    assert_eq!((by.as_str(), rescues), (b_name.as_str(), 1));
    metric(
        "worker_stopped",
        "SIGSTOP to completion by the other worker (lease 2 s)",
        finished.duration_since(frozen).unwrap_or_default(),
    );

    a.signal("CONT");
    a.wait_log("outcomes fenced off", Duration::from_secs(10))
        .await;
    let runs = ledger(&db.client, &db.schema, &format!("job_id = {job}")).await;
    assert_eq!(runs.len(), 2, "{runs:?}");
    assert!(
        runs.iter().all(|r| r.finished),
        "both executions ran to the end: {runs:?}"
    );
    assert!(runs[0].process.starts_with(&a_name) && runs[1].process.starts_with(&b_name));
    assert_ne!(runs[0].token, runs[1].token);
    let row = &db.query(&q).await[0];
    assert_eq!(
        row.get::<_, String>(0),
        b_name,
        "the thawed worker's outcome was not applied"
    );
    assert_eq!(row.get::<_, SystemTime>(1), finished);
    assert_eq!(db.count(&format!("id = {job}")).await, 1);

    a.finish(Duration::from_secs(10)).await;
    b.finish(Duration::from_secs(10)).await;
    db.cleanup().await;
}

//! A worker process is SIGKILLed in the middle of a job while a second one drains the
//! queue: the survivor rescues the job once its lease runs out and runs it again. It is
//! completed exactly once, and the interrupted attempt is given back.

use std::time::{Duration, SystemTime};

use super::*;
use crate::support::*;

pub fn spec(db: &TestDb, name: &str, mode: &str, concurrency: u32) -> WorkerSpec {
    WorkerSpec {
        url: db.url.clone(),
        schema: db.schema.clone(),
        name: name.to_string(),
        lease_ms: 2000,
        poll_ms: 200,
        concurrency,
        mode: mode.to_string(),
        max_rescues: 5,
    }
}

#[actix_rt::test]
async fn killed_worker_job_is_rerun_by_the_survivor_and_completed_once() {
    let db = TestDb::new().await;
    create_ledger(&db.client, &db.schema).await;
    let a_name = worker_id("killed-a");
    let b_name = worker_id("killed-b");
    let mut a = Worker::start(&spec(&db, &a_name, "sleep:60000", 1)).await;
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
    let b = Worker::start(&spec(&db, &b_name, "normal", 4)).await;
    db.query("SELECT {schema}.enqueue('fault', '{}') FROM generate_series(1, 50)")
        .await;

    let killed: SystemTime = server_now(&db.client).await;
    a.kill();
    db.wait_count(
        &format!("id = {job} AND state = 'completed'"),
        1,
        Duration::from_secs(10),
    )
    .await;
    let row = &db
        .query(&format!(
            "SELECT attempt, rescues, worker_id, finished_at, errors::text \
             FROM {{schema}}.jobs_finished WHERE id = {job}"
        ))
        .await[0];
    let (attempt, rescues, by): (i32, i32, String) = (row.get(0), row.get(1), row.get(2));
    let finished: SystemTime = row.get(3);
    assert_eq!(
        (attempt, rescues),
        (1, 1),
        "errors: {}",
        row.get::<_, String>(4)
    );
    assert_eq!(by, b_name);
    let runs = ledger(&db.client, &db.schema, &format!("job_id = {job}")).await;
    assert_eq!(runs.len(), 2, "{runs:?}");
    assert!(
        runs[0].process.starts_with(&a_name) && !runs[0].finished,
        "{runs:?}"
    );
    assert!(
        runs[1].process.starts_with(&b_name) && runs[1].finished,
        "{runs:?}"
    );
    assert_eq!(
        (runs[0].attempt, runs[1].attempt),
        (1, 1),
        "the rescue gave the attempt back"
    );
    metric(
        "worker_killed",
        "SIGKILL to completion by the survivor (lease 2 s)",
        finished.duration_since(killed).unwrap_or_default(),
    );

    drained(&db.client, &db.schema, Duration::from_secs(10)).await;
    let executions = ledger_executions(&db.client, &db.schema).await;
    let audit = audit(&db.client, &db.schema, &[job], &executions).await;
    assert_eq!(audit.completed, 51);
    assert_eq!(audit.reruns, 1, "only the killed job ran twice");
    b.finish(Duration::from_secs(10)).await;
    db.cleanup().await;
}

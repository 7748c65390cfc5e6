//! A poison pill: a job whose handler aborts the whole process. The test restarts the
//! worker each time it dies (as a process supervisor would). With `max_rescues` 3, the
//! job has killed its worker three times when the rescuer fails it for good, with the
//! reason; the 200 other jobs all complete.

use std::time::{Duration, Instant};

use super::*;
use crate::support::*;

const MAX_RESCUES: i32 = 3;

#[actix_rt::test]
async fn poison_pill_is_failed_after_max_rescues_and_the_rest_completes() {
    let db = TestDb::new().await;
    create_ledger(&db.client, &db.schema).await;
    let poison: i64 = db
        .query("SELECT {schema}.enqueue('fault', '{\"poison\": true}', priority => 0)")
        .await[0]
        .get(0);
    db.query("SELECT {schema}.enqueue('fault', '{}') FROM generate_series(1, 200)")
        .await;
    let spec = WorkerSpec {
        url: db.url.clone(),
        schema: db.schema.clone(),
        name: worker_id("poison"),
        lease_ms: 1500,
        poll_ms: 200,
        concurrency: 4,
        mode: "poison-abort".into(),
        max_rescues: MAX_RESCUES,
    };

    let started = Instant::now();
    let mut worker = Worker::spawn(&spec);
    let mut deaths = 0;
    let done = format!(
        "SELECT count(*) FILTER (WHERE state = 'completed'), count(*) FILTER (WHERE state = 'failed') \
         FROM \"{}\".jobs_finished",
        db.schema
    );
    loop {
        if worker.exited() {
            deaths += 1;
            worker = Worker::spawn(&spec);
        }
        let row = db.client.query_one(&done, &[]).await.unwrap();
        let (completed, failed): (i64, i64) = (row.get(0), row.get(1));
        if completed == 200 && failed == 1 {
            break;
        }
        if started.elapsed() > Duration::from_secs(60) {
            worker.dump();
            panic!("after 60 s: {completed} completed, {failed} failed, {deaths} deaths");
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    metric(
        "poison",
        &format!("poison pill failed after {MAX_RESCUES} crashes, 200 others done"),
        started.elapsed(),
    );

    let row = &db
        .query(&format!(
            "SELECT state, rescues, errors FROM {{schema}}.jobs_finished WHERE id = {poison}"
        ))
        .await[0];
    assert_eq!(row.get::<_, String>(0), "failed");
    assert_eq!(row.get::<_, i32>(1), MAX_RESCUES);
    let errors: serde_json::Value = row.get(2);
    let last = errors
        .as_array()
        .and_then(|e| e.last())
        .cloned()
        .unwrap_or_default();
    assert_eq!(last["cause"], "rescue", "{errors}");
    assert!(
        last["error"].as_str().unwrap_or("").contains("poison pill"),
        "{errors}"
    );
    let runs = ledger(&db.client, &db.schema, &format!("job_id = {poison}")).await;
    assert_eq!(
        runs.len(),
        MAX_RESCUES as usize,
        "one crash per run: {runs:?}"
    );
    assert!(runs.iter().all(|r| !r.finished));
    assert_eq!(deaths, MAX_RESCUES, "the worker died once per poison run");

    // The others: each completed once; a rerun only after a rescue (a crash hit it).
    let rows = db
        .query("SELECT count(*), count(*) FILTER (WHERE attempt = 1) FROM {schema}.jobs_finished WHERE state = 'completed'")
        .await;
    assert_eq!(
        (rows[0].get::<_, i64>(0), rows[0].get::<_, i64>(1)),
        (200, 200)
    );
    let reruns = db
        .query(
            "SELECT l.job_id, count(*), max(f.rescues) FROM {schema}.ledger l \
             JOIN {schema}.jobs_finished f ON f.id = l.job_id \
             WHERE f.state = 'completed' GROUP BY l.job_id HAVING count(*) > 1",
        )
        .await;
    for r in &reruns {
        assert!(
            r.get::<_, i32>(2) > 0,
            "job {} ran twice without a rescue",
            r.get::<_, i64>(0)
        );
    }
    println!(
        "poison: {} innocent jobs were interrupted by a crash and rerun",
        reruns.len()
    );
    assert_eq!(db.count("state IN ('available', 'running')").await, 0);
    worker.finish(Duration::from_secs(10)).await;
    db.cleanup().await;
}

//! Cancelling a job that runs in another process (issue 10, part 2). The job runs in a
//! worker process; the cancel comes from this test process (SQL `cancel()`, or an
//! engine's `cancel`). Each race ends in exactly one outcome: cancel against completion,
//! against retry, against rescue, during a database outage, and against a frozen worker.

use std::collections::HashMap;
use std::time::{Duration, SystemTime};

use pglane::{CancelOutcome, Engine};

use super::worker_killed::spec;
use super::*;
use crate::support::*;

/// What `cancel()` answered, and when (database clock).
#[derive(Debug, Clone)]
struct Answer {
    answer: Result<String, String>,
    at: SystemTime,
}

/// Cancels job `id` through SQL, as another service would.
async fn cancel_sql(client: &Client, schema: &str, id: i64) -> Answer {
    let sql = format!("SELECT \"{schema}\".cancel($1, 'test reason', 'the test')");
    let answer = client
        .query_one(&sql, &[&id])
        .await
        .map(|r| r.get::<_, String>(0))
        .map_err(|e| {
            e.as_db_error()
                .map_or(e.to_string(), |d| d.message().to_string())
        });
    let at = server_now(client).await;
    Answer { answer, at }
}

/// The job's state (live or finished).
async fn state_of(db: &TestDb, id: i64) -> String {
    db.query(&format!(
        "SELECT state FROM {{schema}}.all_jobs WHERE id = {id}"
    ))
    .await[0]
        .get(0)
}

async fn wait_started(db: &TestDb, job: i64) {
    wait_for(
        "the worker to start the job",
        Duration::from_secs(10),
        || {
            let db = &db;
            async move {
                !ledger(&db.client, &db.schema, &format!("job_id = {job}"))
                    .await
                    .is_empty()
            }
        },
    )
    .await;
}

async fn wait_cancelled(db: &TestDb, job: i64, within: Duration) {
    db.wait_count(&format!("id = {job} AND state = 'cancelled'"), 1, within)
        .await;
}

/// The newest history entry of a job.
async fn last_entry(db: &TestDb, id: i64) -> serde_json::Value {
    errors_of(db, id).await.pop().expect("a history entry")
}

/// An engine in this process (it runs none of the workers' jobs): the Rust door.
async fn canceller(db: &TestDb) -> Engine {
    db.engine()
        .worker_id(worker_id("canceller"))
        .register::<Probe>()
        .data(Events::new().sender())
        .start()
        .await
        .expect("engine")
}

/// A handler in another process notices the cancel (`ctx.cancelled()`), stops, and the
/// job ends `cancelled` with who asked and why; it is not retried.
#[actix_rt::test]
async fn handler_in_another_process_notices_the_cancel() {
    let db = TestDb::new().await;
    create_ledger(&db.client, &db.schema).await;
    let a = Worker::start(&spec(&db, &worker_id("cancel-a"), "cancellable:60000", 1)).await;
    let job: i64 = db
        .query("SELECT {schema}.enqueue('fault', '{}', max_attempts => 5)")
        .await[0]
        .get(0);
    wait_started(&db, job).await;
    let engine = canceller(&db).await;
    assert_eq!(
        engine.cancel_with_reason(job, "not needed").await.unwrap(),
        CancelOutcome::Requested
    );
    wait_cancelled(&db, job, Duration::from_secs(10)).await;
    let entry = last_entry(&db, job).await;
    assert_eq!(entry["cause"], "cancel");
    assert_eq!(entry["reason"], "not needed");
    assert!(entry["by"]
        .as_str()
        .unwrap()
        .starts_with("engine fault-canceller"));
    let runs = ledger(&db.client, &db.schema, &format!("job_id = {job}")).await;
    assert_eq!(runs.len(), 1, "not retried: {runs:?}");
    assert!(runs[0].finished, "the handler noticed and stopped");
    assert!(matches!(
        engine.cancel(job).await,
        Err(pglane::Error::NotCancellable { .. })
    ));
    engine.shutdown().await.unwrap();
    a.finish(Duration::from_secs(10)).await;
    db.cleanup().await;
}

/// A handler that ignores the cancel is aborted after the grace period; the job ends
/// `cancelled` all the same, and the worker goes on with other work.
#[actix_rt::test]
async fn handler_that_ignores_the_cancel_is_aborted_after_the_grace_period() {
    let db = TestDb::new().await;
    create_ledger(&db.client, &db.schema).await;
    let a = Worker::start(&spec(&db, &worker_id("stubborn-a"), "sleep:60000", 1)).await;
    let job: i64 = db.query("SELECT {schema}.enqueue('fault', '{}')").await[0].get(0);
    wait_started(&db, job).await;
    let answer = cancel_sql(&db.client, &db.schema, job).await;
    assert_eq!(answer.answer.as_deref(), Ok("requested"));
    wait_cancelled(&db, job, Duration::from_secs(10)).await;
    a.wait_log(
        "did not stop within the grace period",
        Duration::from_secs(5),
    )
    .await;
    let runs = ledger(&db.client, &db.schema, &format!("job_id = {job}")).await;
    assert_eq!(runs.len(), 1);
    assert!(!runs[0].finished, "aborted, not finished");
    // Its slot is free again.
    let next: i64 = db.query("SELECT {schema}.enqueue('fault', '{}')").await[0].get(0);
    wait_started(&db, next).await;
    a.finish(Duration::from_secs(10)).await;
    db.cleanup().await;
}

/// Cancels race completions: 120 short jobs, each cancelled once at a random moment.
/// Every job ends exactly once, as its cancel's answer says: `cancelled` (never ran),
/// `requested` (ends `cancelled`), or refused because it had completed.
#[actix_rt::test]
async fn cancel_against_completion_has_one_outcome() {
    let db = TestDb::new().await;
    create_ledger(&db.client, &db.schema).await;
    let a = Worker::start(&spec(&db, &worker_id("race-a"), "sleep:15", 4)).await;
    let ids: Vec<i64> = db
        .query("SELECT {schema}.enqueue('fault', '{}') FROM generate_series(1, 120)")
        .await
        .iter()
        .map(|r| r.get(0))
        .collect();
    let mut answers = HashMap::new();
    for id in &ids {
        tokio::time::sleep(Duration::from_millis(fastrand::u64(0..8))).await;
        answers.insert(*id, cancel_sql(&db.client, &db.schema, *id).await);
    }
    drained(&db.client, &db.schema, Duration::from_secs(30)).await;
    let executions = ledger_executions(&db.client, &db.schema).await;
    let mut seen = HashMap::new();
    for id in &ids {
        let state = state_of(&db, *id).await;
        let answer = &answers[id].answer;
        let runs = executions.get(id).copied().unwrap_or(0);
        match answer.as_deref() {
            Ok("cancelled") => assert_eq!((state.as_str(), runs), ("cancelled", 0), "{id}"),
            Ok("requested") => assert_eq!((state.as_str(), runs), ("cancelled", 1), "{id}"),
            Err(e) if e.contains("already completed") => {
                assert_eq!((state.as_str(), runs), ("completed", 1), "{id}")
            }
            other => panic!("job {id}: unexpected answer {other:?}"),
        }
        *seen
            .entry(answer.clone().unwrap_or_else(|_| "completed".into()))
            .or_insert(0) += 1;
    }
    println!("cancel against completion: {seen:?}");
    assert_eq!(db.count("true").await, 120, "each job once");
    a.finish(Duration::from_secs(10)).await;
    db.cleanup().await;
}

/// Cancels race retries: jobs that fail (and are retried) are cancelled at random
/// moments. Each ends `cancelled`, and no attempt starts after its cancel was answered.
#[actix_rt::test]
async fn cancel_against_retry_has_one_outcome() {
    let db = TestDb::new().await;
    create_ledger(&db.client, &db.schema).await;
    let a = Worker::start(&spec(&db, &worker_id("retry-a"), "fail:10", 4)).await;
    let ids: Vec<i64> = db
        .query(
            "SELECT {schema}.enqueue('fault', '{}', max_attempts => 1000) \
             FROM generate_series(1, 40)",
        )
        .await
        .iter()
        .map(|r| r.get(0))
        .collect();
    // Let every job fail at least once (the retry backoff is about a second).
    wait_for(
        "a first failure of each job",
        Duration::from_secs(15),
        || {
            let db = &db;
            async move {
                db.count("state = 'available' AND attempt >= 1").await
                    + db.count("state = 'running' AND attempt >= 2").await
                    >= 40
            }
        },
    )
    .await;
    let mut answers = HashMap::new();
    for id in &ids {
        tokio::time::sleep(Duration::from_millis(fastrand::u64(0..30))).await;
        answers.insert(*id, cancel_sql(&db.client, &db.schema, *id).await);
    }
    drained(&db.client, &db.schema, Duration::from_secs(30)).await;
    for id in &ids {
        let a = &answers[id];
        assert!(
            matches!(a.answer.as_deref(), Ok("cancelled" | "requested")),
            "{id}: {a:?}"
        );
        assert_eq!(state_of(&db, *id).await, "cancelled", "{id}");
        let late = db
            .client
            .query_one(
                &format!(
                    "SELECT count(*) FROM \"{}\".ledger WHERE job_id = $1 AND started_at > $2",
                    db.schema
                ),
                &[id, &a.at],
            )
            .await
            .unwrap()
            .get::<_, i64>(0);
        assert_eq!(late, 0, "job {id} ran again after its cancel");
    }
    a.finish(Duration::from_secs(10)).await;
    db.cleanup().await;
}

/// The worker is killed mid-job and the cancel arrives while the job still looks
/// running: the rescuer (another worker's maintenance) ends it `cancelled` instead of
/// giving it back, and nobody runs it again.
#[actix_rt::test]
async fn cancel_against_rescue_of_a_killed_worker() {
    let db = TestDb::new().await;
    create_ledger(&db.client, &db.schema).await;
    let mut a = Worker::start(&spec(&db, &worker_id("rescue-a"), "sleep:60000", 1)).await;
    let job: i64 = db.query("SELECT {schema}.enqueue('fault', '{}')").await[0].get(0);
    wait_started(&db, job).await;
    a.kill();
    let answer = cancel_sql(&db.client, &db.schema, job).await;
    assert_eq!(answer.answer.as_deref(), Ok("requested"), "still leased");
    let b = Worker::start(&spec(&db, &worker_id("rescue-b"), "normal", 2)).await;
    wait_cancelled(&db, job, Duration::from_secs(15)).await;
    assert_eq!(last_entry(&db, job).await["cause"], "cancel");
    // B is idle and polling: had the job been given back, it would have run it.
    tokio::time::sleep(Duration::from_secs(1)).await;
    let runs = ledger(&db.client, &db.schema, &format!("job_id = {job}")).await;
    assert_eq!(runs.len(), 1, "never rerun: {runs:?}");
    b.finish(Duration::from_secs(10)).await;
    db.cleanup().await;
}

/// The worker is frozen (SIGSTOP) when the cancel comes: the request is recorded, the
/// lease runs out, and another worker's rescuer ends the job `cancelled`. When the
/// frozen worker wakes, it hears the notification, its handler stops, and its outcome
/// is fenced off: one outcome, one execution.
#[actix_rt::test]
async fn cancel_of_a_frozen_worker_is_fenced_when_it_wakes() {
    let db = TestDb::new().await;
    create_ledger(&db.client, &db.schema).await;
    let a = Worker::start(&spec(&db, &worker_id("frozen-a"), "cancellable:60000", 1)).await;
    let job: i64 = db.query("SELECT {schema}.enqueue('fault', '{}')").await[0].get(0);
    wait_started(&db, job).await;
    a.signal("STOP");
    let answer = cancel_sql(&db.client, &db.schema, job).await;
    assert_eq!(answer.answer.as_deref(), Ok("requested"));
    let b = Worker::start(&spec(&db, &worker_id("frozen-b"), "normal", 1)).await;
    wait_cancelled(&db, job, Duration::from_secs(15)).await;
    let finished_at: SystemTime = db
        .query(&format!(
            "SELECT finished_at FROM {{schema}}.jobs_finished WHERE id = {job}"
        ))
        .await[0]
        .get(0);
    a.signal("CONT");
    a.wait_log("outcomes fenced off", Duration::from_secs(10))
        .await;
    let runs = ledger(&db.client, &db.schema, &format!("job_id = {job}")).await;
    assert_eq!(runs.len(), 1, "{runs:?}");
    assert!(runs[0].finished, "the thawed handler heard the cancel");
    let row = &db
        .query(&format!(
            "SELECT state, finished_at FROM {{schema}}.jobs_finished WHERE id = {job}"
        ))
        .await[0];
    assert_eq!(row.get::<_, String>(0), "cancelled");
    assert_eq!(row.get::<_, SystemTime>(1), finished_at, "written once");
    a.finish(Duration::from_secs(10)).await;
    b.finish(Duration::from_secs(10)).await;
    db.cleanup().await;
}

/// The notification is lost (the request is written without one, as when the worker's
/// listener is down): the lease renewal finds the request and the handler is told.
#[actix_rt::test]
async fn lease_renewal_is_the_backstop_for_a_lost_notification() {
    let db = TestDb::new().await;
    create_ledger(&db.client, &db.schema).await;
    let a = Worker::start(&spec(&db, &worker_id("backstop-a"), "cancellable:60000", 1)).await;
    let job: i64 = db.query("SELECT {schema}.enqueue('fault', '{}')").await[0].get(0);
    wait_started(&db, job).await;
    db.query(&format!(
        "UPDATE {{schema}}.jobs SET cancel_request = \
         jsonb_build_object('at', now(), 'by', 'the test', 'reason', 'silent') WHERE id = {job}"
    ))
    .await;
    // Renewals run every third of the 2 s lease.
    wait_cancelled(&db, job, Duration::from_secs(5)).await;
    let runs = ledger(&db.client, &db.schema, &format!("job_id = {job}")).await;
    assert!(runs[0].finished, "the handler was told");
    assert_eq!(last_entry(&db, job).await["reason"], "silent");
    a.finish(Duration::from_secs(10)).await;
    db.cleanup().await;
}

/// A database outage cuts the worker off; the cancel is accepted as soon as the server
/// is back, while the worker is still reconnecting (it cannot hear the notification).
/// The request is durable: once the worker is back, the job ends `cancelled`, and it is
/// not run again.
#[actix_rt::test]
async fn cancel_during_an_outage_is_applied_when_the_worker_is_back() {
    let pg = Arc::new(private_server(&[]).await);
    let db = TestDb::at(&pg.url()).await;
    create_ledger(&db.client, &db.schema).await;
    let a = Worker::start(&spec(&db, &worker_id("outage-a"), "cancellable:60000", 1)).await;
    let job: i64 = db.query("SELECT {schema}.enqueue('fault', '{}')").await[0].get(0);
    wait_started(&db, job).await;
    let p = pg.clone();
    blocking(move || p.stop_server("fast")).await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    let p = pg.clone();
    blocking(move || p.start_server()).await;
    let admin = connect_retry(&db.url, Duration::from_secs(10)).await;
    let answer = cancel_sql(&admin, &db.schema, job).await;
    assert_eq!(answer.answer.as_deref(), Ok("requested"));
    let db = TestDb {
        client: admin,
        ..db
    };
    wait_cancelled(&db, job, Duration::from_secs(20)).await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    let runs = ledger(&db.client, &db.schema, &format!("job_id = {job}")).await;
    assert_eq!(runs.len(), 1, "not run again: {runs:?}");
    a.finish(Duration::from_secs(10)).await;
    db.cleanup().await;
}

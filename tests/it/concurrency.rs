//! Many workers on one schema: no job runs twice, and a vanished worker's job is rescued
//! with its stale outcome fenced off.

use std::time::Duration;

use pglane::{Enqueue, Lane};

use crate::support::*;

/// Two engines sharing one schema, with many slots each, run 5,000 jobs: every job is
/// completed exactly once and no job is started twice.
#[actix_rt::test]
async fn two_engines_run_every_job_exactly_once() {
    let db = TestDb::new().await;
    let starts = Starts::default();
    let gauge = Gauge::default();
    let start = |name: &str| {
        db.engine()
            .worker_id(name)
            .lane(Lane::new("all").concurrency(24))
            .register::<Probe>()
            .data(starts.clone())
            .data(gauge.clone())
            .start()
    };
    let a = start("engine-a").await.unwrap();
    let b = start("engine-b").await.unwrap();

    const N: usize = 5000;
    let jobs = (0..N).map(|i| Enqueue::new(Probe::new(format!("j{i}"))).priority((i % 7) as i16));
    let ids = a.enqueue_many(jobs).await.unwrap();
    assert_eq!(ids.len(), N);

    db.wait_count("state = 'completed'", N as i64, Duration::from_secs(90))
        .await;
    let starts = starts.snapshot();
    assert_eq!(starts.len(), N, "every job started");
    let twice: Vec<_> = starts.iter().filter(|(_, n)| **n != 1).collect();
    assert!(twice.is_empty(), "jobs started more than once: {twice:?}");
    assert!(ids.iter().all(|id| starts.contains_key(id)));
    // Completed once each, on the first attempt, and both engines took part.
    assert_eq!(
        db.count("state = 'completed' AND attempt = 1 AND rescues = 0")
            .await,
        N as i64
    );
    let by_worker = db
        .query(
            "SELECT worker_id, count(*) FROM {schema}.jobs_finished \
             GROUP BY worker_id ORDER BY worker_id",
        )
        .await;
    let workers: Vec<String> = by_worker.iter().map(|r| r.get(0)).collect();
    assert_eq!(workers, ["engine-a", "engine-b"], "both engines worked");
    assert!(
        gauge.get("all").1 <= 48,
        "never more than both engines' slots"
    );

    a.shutdown().await.unwrap();
    b.shutdown().await.unwrap();
    db.cleanup().await;
}

/// A worker claims a job and vanishes (simulated with the engine's own claim statement
/// and a lease that has already run out). An engine's maintenance pass rescues it: back
/// to `available` with the attempt given back and one rescue counted, then run and
/// completed. An outcome written under the vanished worker's token is rejected.
#[actix_rt::test]
async fn expired_lease_is_rescued_and_the_stale_outcome_fenced_off() {
    let db = TestDb::new().await;
    let mut events = Events::new();
    let rows = db
        .query(
            "SELECT {schema}.enqueue('probe', \
             '{\"tag\": \"orphan\", \"behave\": {\"SleepMs\": 600}}', priority => 3)",
        )
        .await;
    let id: i64 = rows[0].get(0);

    // The vanished worker: claims with the real claim statement, token 4242, a 1 ms lease.
    const GHOST_TOKEN: i64 = 4242;
    let claim = render_sql(include_str!("../../src/store/sql/claim.sql"), &db.schema);
    let claimed = db
        .client
        .query(
            &claim,
            &[
                &0i16,
                &i16::MAX,
                &"default",
                &vec!["probe"],
                &1i64,
                &GHOST_TOKEN,
                &1.0f64,
                &"ghost",
            ],
        )
        .await
        .unwrap();
    assert_eq!(claimed.len(), 1);
    assert_eq!(claimed[0].get::<_, i64>(0), id);
    db.wait_count(
        &format!("id = {id} AND state = 'running' AND attempt = 1"),
        1,
        Duration::from_secs(1),
    )
    .await;

    let engine = db
        .engine()
        .register::<Probe>()
        .data(events.sender())
        .start()
        .await
        .unwrap();
    let e = events.next(Duration::from_secs(10)).await;
    assert_eq!((e.id, e.tag.as_str()), (id, "orphan"));
    assert_eq!(e.attempt, 1, "the interrupted attempt was given back");
    let rows = db
        .query(&format!(
            "SELECT rescues, lease_token FROM {{schema}}.jobs WHERE id = {id} AND state = 'running'"
        ))
        .await;
    assert_eq!(rows[0].get::<_, i32>(0), 1);
    assert_ne!(rows[0].get::<_, Option<i64>>(1), Some(GHOST_TOKEN));

    // The ghost comes back and reports, with its old token, while the new run is going.
    let outcomes = render_sql(include_str!("../../src/store/sql/outcomes.sql"), &db.schema);
    for action in ["complete", "fail", "retry", "release"] {
        let applied = db
            .client
            .query(
                &outcomes,
                &[
                    &vec![id],
                    &vec![GHOST_TOKEN],
                    &vec![action],
                    &vec![0.0f64],
                    &vec![Some("ghost says")],
                    &vec![Some("error")],
                    &true,
                ],
            )
            .await
            .unwrap();
        assert!(applied.is_empty(), "stale `{action}` was applied");
    }
    assert_eq!(
        db.count(&format!("id = {id} AND state = 'running'")).await,
        1,
        "the new run still owns the job"
    );

    db.wait_count(
        &format!("id = {id} AND state = 'completed'"),
        1,
        Duration::from_secs(10),
    )
    .await;
    let rows = db
        .query(&format!(
            "SELECT rescues, attempt, worker_id FROM {{schema}}.jobs_finished WHERE id = {id}"
        ))
        .await;
    assert_eq!(rows[0].get::<_, i32>(0), 1);
    assert_eq!(rows[0].get::<_, i32>(1), 1);
    assert_ne!(rows[0].get::<_, String>(2), "ghost");
    let errors = errors_of(&db, id).await;
    assert_eq!(errors.len(), 1, "{errors:?}");
    assert_eq!(errors[0]["cause"], "rescue");
    assert!(errors[0]["error"].as_str().unwrap().contains("ghost"));
    assert!(
        !errors.iter().any(|e| e["error"] == "ghost says"),
        "nothing of the stale outcome was written"
    );

    engine.shutdown().await.unwrap();
    db.cleanup().await;
}

/// A job running longer than the lease keeps it by renewal: it is never rescued or run
/// twice.
#[actix_rt::test]
async fn long_job_renews_its_lease_and_is_not_rescued() {
    let db = TestDb::new().await;
    let mut events = Events::new();
    let engine = db
        .engine()
        .lease(Duration::from_millis(600))
        .call_timeout(Duration::from_millis(500))
        .register::<Probe>()
        .data(events.sender())
        .start()
        .await
        .unwrap();
    let id = engine
        .enqueue(Enqueue::new(Probe::behave("long", Behave::SleepMs(2500))))
        .await
        .unwrap();
    let e = events.next(Duration::from_secs(5)).await;
    assert_eq!(e.id, id);
    db.wait_count(
        &format!("id = {id} AND state = 'completed'"),
        1,
        Duration::from_secs(10),
    )
    .await;
    assert_eq!(
        db.count(&format!("id = {id} AND rescues = 0 AND attempt = 1"))
            .await,
        1,
        "{:?}",
        errors_of(&db, id).await
    );
    assert!(events.none_within(Duration::from_millis(300)).await);
    engine.shutdown().await.unwrap();
    db.cleanup().await;
}

/// A job whose lease keeps expiring is failed as a poison pill after `max_rescues`.
#[actix_rt::test]
async fn job_that_keeps_losing_its_worker_fails_as_a_poison_pill() {
    let db = TestDb::new().await;
    let rows = db
        .query("SELECT {schema}.enqueue('probe', '{\"tag\": \"pill\", \"behave\": \"Succeed\"}')")
        .await;
    let id: i64 = rows[0].get(0);
    // Rescued once already; its worker vanishes again.
    db.query(&format!(
        "UPDATE {{schema}}.jobs SET state = 'running', attempt = 1, rescues = 1, \
         lease_token = 7, lease_until = now() - interval '1 second', worker_id = 'ghost' \
         WHERE id = {id}"
    ))
    .await;
    let engine = db
        .engine()
        .max_rescues(2)
        .register::<Probe>()
        .start()
        .await
        .unwrap();
    db.wait_count(
        &format!("id = {id} AND state = 'failed' AND rescues = 2"),
        1,
        Duration::from_secs(10),
    )
    .await;
    let errors = errors_of(&db, id).await;
    assert_eq!(errors.len(), 1);
    assert_eq!(errors[0]["cause"], "rescue");
    assert!(errors[0]["error"].as_str().unwrap().contains("poison pill"));
    engine.shutdown().await.unwrap();
    db.cleanup().await;
}

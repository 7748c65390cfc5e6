//! Aging within a lane: a lane saturated by a continuous stream of its most urgent
//! priority still starts a least-urgent job once it has waited `age_after` (within one
//! poll interval and some slack), and without aging it does not start while the stream
//! lasts.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use pglane::{Enqueue, Job, JobContext, JobError, Lane};
use serde::{Deserialize, Serialize};

use crate::support::*;

#[derive(Serialize, Deserialize)]
struct Work {
    ms: u64,
}

impl Job for Work {
    const KIND: &'static str = "work";
    async fn run(self, _: JobContext) -> Result<(), JobError> {
        tokio::time::sleep(Duration::from_millis(self.ms)).await;
        Ok(())
    }
}

const POLL: Duration = Duration::from_millis(200);

/// Starts a 2-slot lane (priorities 0..=99) fed 75 priority-0 jobs of 40 ms a second (it
/// runs 50), enqueues one job of its least urgent priority, 99, once the lane has a
/// backlog, and returns the database and engine, the low job's id, and the feeder's stop
/// switch.
async fn saturated(age_after: Option<Duration>) -> (TestDb, pglane::Engine, i64, Arc<AtomicBool>) {
    let db = TestDb::new().await;
    let mut lane = Lane::new("only").priorities(0..=99).concurrency(2);
    if let Some(d) = age_after {
        lane = lane.age_after(d);
    }
    let engine = db
        .engine()
        .poll_interval(POLL)
        .allow_priority_gaps()
        .lane(lane)
        .register::<Work>()
        .start()
        .await
        .unwrap();
    // Without aging, a head start of 6 s of urgent work keeps the lane saturated even
    // when the feeder below is starved of CPU on a loaded machine (seen in a full suite
    // run). Not with aging: those jobs would be older than the low one, and an aged job
    // rightly waits behind older jobs of the priority it is raised to.
    if age_after.is_none() {
        let head_start = (0..300).map(|_| Enqueue::new(Work { ms: 40 }).priority(0));
        engine.enqueue_many(head_start).await.unwrap();
    }
    let stop = Arc::new(AtomicBool::new(false));
    let (feeder, stopped) = (engine.clone(), stop.clone());
    actix_rt::spawn(async move {
        while !stopped.load(Ordering::Relaxed) {
            let jobs = (0..3).map(|_| Enqueue::new(Work { ms: 40 }).priority(0));
            feeder.enqueue_many(jobs).await.unwrap();
            tokio::time::sleep(Duration::from_millis(40)).await;
        }
    });
    wait_for("an urgent backlog", Duration::from_secs(10), || async {
        backlog(&db).await >= 10
    })
    .await;
    let low = engine
        .enqueue(Enqueue::new(Work { ms: 1500 }).priority(99))
        .await
        .unwrap();
    (db, engine, low, stop)
}

/// Seconds from the low job's insert to its start (database clock), if it started.
async fn waited(db: &TestDb, id: i64) -> Option<f64> {
    db.query(&format!(
        "SELECT extract(epoch FROM started_at - created_at)::float8 FROM {{schema}}.all_jobs \
         WHERE id = {id} AND started_at IS NOT NULL"
    ))
    .await
    .first()
    .map(|r| r.get(0))
}

async fn backlog(db: &TestDb) -> i64 {
    db.count("state = 'available' AND priority = 0").await
}

#[actix_rt::test]
async fn an_aged_job_starts_within_age_after_and_a_poll_despite_an_urgent_stream() {
    let age_after = Duration::from_secs(1);
    let (db, engine, low, stop) = saturated(Some(age_after)).await;
    wait_for("the aged job to start", Duration::from_secs(10), || async {
        waited(&db, low).await.is_some()
    })
    .await;
    let wait = waited(&db, low).await.unwrap();
    // Shown while it runs: raised to the lane's most urgent priority, original kept.
    let row = &db
        .query(&format!(
            "SELECT priority, base_priority FROM {{schema}}.jobs WHERE id = {low}"
        ))
        .await[0];
    let (p, base): (i16, Option<i16>) = (row.get(0), row.get(1));
    let listed = pglane::admin::list(
        &db.client,
        &db.schema,
        Some(pglane::admin::JobState::Running),
        10,
    )
    .await
    .unwrap();
    let shown = listed
        .iter()
        .find(|j| j.id == low)
        .map(|j| (j.priority, j.base_priority));
    let pending = backlog(&db).await;
    stop.store(true, Ordering::Relaxed);
    eprintln!("aging: the least urgent job started after {wait:.2} s (age_after 1 s, poll 0.2 s), with {pending} urgent jobs waiting");
    assert!(pending > 0, "the stream no longer saturated the lane");
    let bound = age_after + POLL + Duration::from_millis(800);
    assert!(
        wait <= bound.as_secs_f64(),
        "waited {wait:.2} s, bound {bound:?}"
    );
    assert!(
        wait >= age_after.as_secs_f64() - 0.05,
        "started before it aged: {wait}"
    );
    assert_eq!((p, base), (0, Some(99)));
    assert_eq!(shown, Some((0, Some(99))), "pglane list shows both");
    engine.shutdown().await.unwrap();
    db.cleanup().await;
}

#[actix_rt::test]
async fn without_aging_the_least_urgent_job_waits_while_the_stream_lasts() {
    let (db, engine, low, stop) = saturated(None).await;
    let until = Instant::now() + Duration::from_secs(4);
    while Instant::now() < until {
        assert_eq!(
            waited(&db, low).await,
            None,
            "started under an urgent stream"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(
        backlog(&db).await > 0,
        "the stream no longer saturated the lane"
    );
    stop.store(true, Ordering::Relaxed);
    engine
        .shutdown_within(Duration::from_secs(1))
        .await
        .unwrap();
    db.cleanup().await;
}

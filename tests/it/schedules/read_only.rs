//! A schedule whose ticks come due while the database is read-only (a demoted primary):
//! the enqueues fail, and once the database is writable again the missed ticks are
//! dealt with by the schedule's policy, here `catch_up(3)`.

use std::time::Duration;

use pglane::{Enqueue, Missed, Schedule};

use super::{assert_once_per_tick, Tick};
use crate::faults::{flip_read_only, private_server};
use crate::support::*;

async fn db_now(db: &TestDb) -> f64 {
    db.query("SELECT extract(epoch FROM clock_timestamp())::float8")
        .await[0]
        .get(0)
}

/// (tick, created_at) of every job, in seconds since the epoch, oldest tick first.
async fn jobs(db: &TestDb) -> Vec<(f64, f64)> {
    db.query(
        "SELECT extract(epoch FROM run_at)::float8, extract(epoch FROM created_at)::float8 \
         FROM {schema}.all_jobs ORDER BY run_at",
    )
    .await
    .iter()
    .map(|r| (r.get(0), r.get(1)))
    .collect()
}

#[actix_rt::test]
async fn ticks_missed_while_read_only_are_caught_up_by_policy_once_writable() {
    let pg = private_server(&[]).await;
    let db = TestDb::at(&pg.url()).await;
    db.client
        .batch_execute("SET default_transaction_read_only = off")
        .await
        .unwrap();
    let schedule = Schedule::new("ro", "* * * * * *")
        .job(Enqueue::new(Tick { n: 3 }))
        .missed(Missed::CatchUp(3));
    let engine = db
        .engine()
        .register::<Tick>()
        .schedule(schedule)
        .start()
        .await
        .unwrap();
    db.wait_count("state = 'completed'", 2, Duration::from_secs(10))
        .await;
    flip_read_only(&db.client, true).await;
    let flipped = db_now(&db).await;
    wait_stats(
        &engine,
        "the read-only database to be noticed",
        Duration::from_secs(10),
        |s| !s.database.available,
    )
    .await;
    while db_now(&db).await < flipped + 6.0 {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    flip_read_only(&db.client, false).await;
    let back = db_now(&db).await;
    wait_for(
        "ticks after the flip back",
        Duration::from_secs(15),
        || async {
            jobs(&db)
                .await
                .iter()
                .any(|(_, created)| *created > back + 1.5)
        },
    )
    .await;
    engine.shutdown().await.unwrap();

    assert_once_per_tick(&super::ticks(&db, "tick").await);
    let all = jobs(&db).await;
    // The first enqueue once writable: one statement, so one created_at.
    let first = all
        .iter()
        .filter(|(_, c)| *c > back)
        .map(|(_, c)| *c)
        .fold(f64::INFINITY, f64::min);
    let batch: Vec<f64> = all
        .iter()
        .filter(|(_, c)| *c == first)
        .map(|(t, _)| *t)
        .collect();
    eprintln!(
        "schedules: read-only for {:.1} s; caught up ticks {batch:?} at {first}",
        back - flipped
    );
    assert_eq!(batch.len(), 3, "catch_up(3) after the flip back: {all:?}");
    assert_eq!(
        batch[2] - batch[0],
        2.0,
        "consecutive newest ticks: {batch:?}"
    );
    assert!(
        first - batch[0] >= 2.0,
        "the oldest caught-up tick was late: {batch:?}"
    );
    // Every other tick that came due while read-only was skipped.
    let skipped_window = all
        .iter()
        .filter(|(t, _)| *t > flipped + 1.0 && *t < batch[0])
        .count();
    assert_eq!(skipped_window, 0, "{all:?}");
    db.cleanup().await;
}

//! Periodic jobs: ticks enqueued once each, by the database clock, in every engine that
//! declares them; stats and the admin listing; typed errors for bad declarations; the
//! newest declaration wins; run-on-start; and, in `processes`, four engine processes
//! sharing a schedule, every missed-tick policy after an outage of all engines, and a
//! schedule that comes due while the database is read-only.

use std::time::Duration;

use pglane::{Enqueue, Error, Job, JobContext, JobError, Missed, Schedule};
use serde::{Deserialize, Serialize};

use crate::support::*;

mod processes;
mod read_only;

/// The scheduled job: does nothing.
#[derive(Debug, Serialize, Deserialize)]
pub struct Tick {
    pub n: u32,
}

impl Job for Tick {
    const KIND: &'static str = "tick";
    async fn run(self, _: JobContext) -> Result<(), JobError> {
        Ok(())
    }
}

/// Every second, in UTC.
pub fn every_second(name: &str) -> Schedule {
    Schedule::new(name, "* * * * * *").job(Enqueue::new(Tick { n: 1 }).priority(5))
}

/// The ticks (`run_at`, in seconds since the epoch) of the jobs `name`'s kind enqueued,
/// live or finished, oldest first, with how many jobs each tick got.
pub async fn ticks(db: &TestDb, kind: &str) -> Vec<(f64, i64)> {
    db.query(&format!(
        "SELECT extract(epoch FROM run_at)::float8, count(*) FROM {{schema}}.all_jobs \
         WHERE kind = '{kind}' GROUP BY run_at ORDER BY run_at"
    ))
    .await
    .iter()
    .map(|r| (r.get(0), r.get(1)))
    .collect()
}

/// Asserts no tick got two jobs and every tick is a whole second.
pub fn assert_once_per_tick(ticks: &[(f64, i64)]) {
    for (t, n) in ticks {
        assert_eq!(*n, 1, "tick {t} got {n} jobs: {ticks:?}");
        assert_eq!(t.fract(), 0.0, "tick {t} is not a whole second");
    }
}

#[actix_rt::test]
async fn a_per_second_schedule_enqueues_each_tick_once_and_shows_in_stats() {
    let db = TestDb::new().await;
    let engine = db
        .engine()
        .register::<Tick>()
        .schedule(every_second("heartbeat"))
        .start()
        .await
        .unwrap();
    db.wait_count(
        "kind = 'tick' AND state = 'completed'",
        3,
        Duration::from_secs(10),
    )
    .await;
    let s = wait_stats(
        &engine,
        "the schedule in stats",
        Duration::from_secs(5),
        |s| s.schedules.iter().any(|s| s.runs >= 3),
    )
    .await;
    let sch = &s.schedules[0];
    assert_eq!(
        (
            sch.name.as_str(),
            sch.kind.as_str(),
            sch.missed.as_str(),
            sch.active
        ),
        ("heartbeat", "tick", "skip", true)
    );
    assert!(sch.next_run > sch.last_run_at, "{sch:?}");
    let ticks = ticks(&db, "tick").await;
    assert_once_per_tick(&ticks);
    for pair in ticks.windows(2) {
        assert_eq!(pair[1].0 - pair[0].0, 1.0, "consecutive ticks: {ticks:?}");
    }
    // Jobs carry the schedule's options.
    let p: i16 = db
        .query("SELECT min(priority) FROM {schema}.all_jobs")
        .await[0]
        .get(0);
    assert_eq!(p, 5);
    engine.shutdown().await.unwrap();
    db.cleanup().await;
}

#[actix_rt::test]
async fn bad_declarations_fail_start_with_typed_errors_and_write_nothing() {
    let db = TestDb::new().await;
    let start = |s: Schedule| db.engine().register::<Tick>().schedule(s).start();
    let cron = start(Schedule::new("bad", "0 25 * * *").job(Enqueue::new(Tick { n: 1 })));
    assert!(matches!(cron.await, Err(Error::InvalidCron { .. })));
    let zone = start(every_second("bad").time_zone("America/Atlantis"));
    assert!(matches!(zone.await, Err(Error::UnknownTimeZone { .. })));
    let no_job = start(Schedule::new("bad", "@hourly"));
    assert!(matches!(no_job.await, Err(Error::InvalidConfig(_))));
    let n: i64 = db.query("SELECT count(*) FROM {schema}.schedules").await[0].get(0);
    assert_eq!(n, 0, "nothing written");
    db.cleanup().await;
}

#[actix_rt::test]
async fn the_newest_declaration_wins_and_a_removed_schedule_stops_firing() {
    let db = TestDb::new().await;
    let old = db
        .engine()
        .register::<Tick>()
        .schedule(every_second("versions"))
        .start()
        .await
        .unwrap();
    db.wait_count("kind = 'tick' AND priority = 5", 1, Duration::from_secs(10))
        .await;
    // A newer deployment declares another definition (priority 7) while the old engine
    // still runs: both fire the stored, newer one, still once per tick.
    let new = db
        .engine()
        .register::<Tick>()
        .schedule(
            Schedule::new("versions", "* * * * * *").job(Enqueue::new(Tick { n: 2 }).priority(7)),
        )
        .start()
        .await
        .unwrap();
    let declared = db.count("true").await;
    db.wait_count("kind = 'tick' AND priority = 7", 3, Duration::from_secs(10))
        .await;
    let stray: i64 = db
        .query(&format!(
            "SELECT count(*) FROM {{schema}}.all_jobs WHERE priority = 5 AND id > {declared}"
        ))
        .await[0]
        .get(0);
    assert!(stray <= 1, "the old definition kept firing: {stray} jobs");
    assert_once_per_tick(&ticks(&db, "tick").await);
    // Removed from code: no running engine declares it any more.
    old.shutdown().await.unwrap();
    new.shutdown().await.unwrap();
    let other = db
        .engine()
        .register::<Tick>()
        .schedule(every_second("other"))
        .start()
        .await
        .unwrap();
    let before = db.count("kind = 'tick'").await;
    let s = wait_stats(
        &other,
        "the old schedule to show inactive",
        Duration::from_secs(30),
        |s| {
            s.schedules
                .iter()
                .any(|x| x.name == "versions" && !x.active)
                && s.schedules.iter().any(|x| x.name == "other" && x.runs >= 2)
        },
    )
    .await;
    let versions = s.schedules.iter().find(|x| x.name == "versions").unwrap();
    let listed = pglane::admin::schedules(&db.client, &db.schema)
        .await
        .unwrap();
    assert_eq!(listed.len(), 2);
    assert!(!listed.iter().find(|x| x.name == "versions").unwrap().active);
    let after: i64 = db
        .query("SELECT count(*) FROM {schema}.all_jobs WHERE kind = 'tick' AND args->>'n' = '2'")
        .await[0]
        .get(0);
    assert!(after as u64 <= versions.runs as u64 + 1);
    assert!(db.count("kind = 'tick'").await > before);
    other.shutdown().await.unwrap();
    db.cleanup().await;
}

#[actix_rt::test]
async fn run_on_start_enqueues_once_for_engines_starting_together() {
    let db = TestDb::new().await;
    let hourly = || {
        Schedule::new("deploy", "@yearly")
            .job(Enqueue::new(Tick { n: 9 }))
            .missed(Missed::Coalesce)
            .run_on_start()
    };
    let starts = (0..3).map(|_| db.engine().register::<Tick>().schedule(hourly()).start());
    let engines: Vec<_> = futures_util::future::join_all(starts)
        .await
        .into_iter()
        .map(|e| e.unwrap())
        .collect();
    db.wait_count(
        "kind = 'tick' AND state = 'completed'",
        1,
        Duration::from_secs(10),
    )
    .await;
    // A restart of the same definition while others still run enqueues nothing more.
    engines[0].shutdown().await.unwrap();
    let again = db
        .engine()
        .register::<Tick>()
        .schedule(hourly())
        .start()
        .await
        .unwrap();
    let s = again.stats().await.unwrap();
    assert_eq!(s.schedules[0].missed, "coalesce");
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(db.count("kind = 'tick'").await, 1);
    for e in engines.iter().skip(1).chain([&again]) {
        e.shutdown().await.unwrap();
    }
    db.cleanup().await;
}

//! Schedules across real engine processes: this test binary, run again as an engine
//! with one schedule (see [`helper_process`]). Four processes share a per-second
//! schedule; every missed-tick policy is checked after all four were killed (SIGKILL)
//! and restarted.

use std::io::{BufRead, BufReader};
use std::process::{Child, Stdio};
use std::time::Duration;

use pglane::{Enqueue, Missed, Schedule};
use serde::{Deserialize, Serialize};

use super::{assert_once_per_tick, ticks, Tick};
use crate::support::*;

const ROLE: &str = "PGLANE_SCHEDULE_ENGINE";
const READY: &str = "pglane schedule engine ready";

/// What a helper engine runs.
#[derive(Serialize, Deserialize)]
struct Spec {
    url: String,
    schema: String,
    cron: String,
    /// `skip`, `coalesce` or `catch_up:N`.
    missed: String,
    grace_ms: u64,
}

/// Not a test: the helper engine's `main`. Passes at once in a normal test run.
#[test]
fn schedule_engine_process() {
    let Ok(spec) = std::env::var(ROLE) else {
        return;
    };
    let spec: Spec = serde_json::from_str(&spec).expect("a spec");
    let missed = match spec.missed.as_str() {
        "skip" => Missed::Skip,
        "coalesce" => Missed::Coalesce,
        other => Missed::CatchUp(other.trim_start_matches("catch_up:").parse().unwrap()),
    };
    actix_rt::System::new().block_on(async move {
        let schedule = Schedule::new("shared", spec.cron.as_str())
            .job(Enqueue::new(Tick { n: 0 }))
            .missed(missed)
            .grace(Duration::from_millis(spec.grace_ms));
        let engine = pglane::Engine::builder(spec.url.as_str())
            .schema(spec.schema.clone())
            .register::<Tick>()
            .schedule(schedule)
            .start()
            .await
            .expect("engine");
        println!("{READY}");
        // Runs until killed, or until the test closes stdin.
        tokio::task::spawn_blocking(|| {
            let mut line = String::new();
            while std::io::stdin().read_line(&mut line).unwrap_or(0) > 0 {}
        })
        .await
        .unwrap();
        engine.shutdown().await.unwrap();
    });
}

/// Starts `n` helper engines and waits until each has started (declared its schedule
/// or is about to: READY is printed once `start` returned).
fn spawn_engines(db: &TestDb, n: usize, cron: &str, missed: &str, grace_ms: u64) -> Vec<Child> {
    let spec = Spec {
        url: db.url.clone(),
        schema: db.schema.clone(),
        cron: cron.into(),
        missed: missed.into(),
        grace_ms,
    };
    let spec = serde_json::to_string(&spec).unwrap();
    let entry = test_path(module_path!(), "schedule_engine_process");
    let mut children: Vec<Child> = (0..n)
        .map(|_| {
            helper_process(&entry, ROLE, &spec)
                .stdin(Stdio::piped())
                .stdout(Stdio::piped())
                .spawn()
                .expect("spawn an engine process")
        })
        .collect();
    for c in &mut children {
        let out = c.stdout.take().unwrap();
        let mut lines = BufReader::new(out).lines();
        loop {
            match lines.next() {
                Some(Ok(l)) if l.contains(READY) => break,
                Some(_) => continue,
                None => panic!("an engine process exited before it was ready"),
            }
        }
    }
    children
}

fn kill_all(children: &mut [Child]) {
    for c in children.iter_mut() {
        let _ = c.kill();
    }
    for c in children.iter_mut() {
        let _ = c.wait();
    }
}

/// The database clock, in seconds since the epoch.
async fn db_now(db: &TestDb) -> f64 {
    db.query("SELECT extract(epoch FROM clock_timestamp())::float8")
        .await[0]
        .get(0)
}

#[actix_rt::test]
async fn four_engine_processes_enqueue_each_tick_of_a_per_second_schedule_once() {
    let db = TestDb::new().await;
    let mut engines = spawn_engines(&db, 4, "* * * * * *", "skip", 2000);
    let from = db_now(&db).await;
    tokio::time::sleep(Duration::from_secs(20)).await;
    let to = db_now(&db).await;
    kill_all(&mut engines);
    let all = ticks(&db, "tick").await;
    assert_once_per_tick(&all);
    let within = all.iter().filter(|(t, _)| *t > from && *t <= to).count() as i64;
    let expected = (to.floor() - from.floor()) as i64;
    eprintln!(
        "schedules: 4 processes, {within} jobs for {expected} ticks in {:.2} s",
        to - from
    );
    assert!(
        (within - 20).abs() <= 1 && (within - expected).abs() <= 1,
        "{within} jobs in {:.2} s: {all:?}",
        to - from
    );
    db.cleanup().await;
}

/// Four engines on a 5-second schedule are killed just after tick T0 and restarted at
/// T0 + 16 s (every engine is down for about 16 s: ticks T0+5, T0+10 and T0+15 are
/// missed); then returns the ticks enqueued after T0, relative to T0. Skip's grace is
/// 0.5 s, so T0+15, at least 1 s late at the restart, is missed rather than late.
async fn outage(missed: &str) -> (TestDb, Vec<f64>) {
    let db = TestDb::new().await;
    let cron = "*/5 * * * * *";
    let mut engines = spawn_engines(&db, 4, cron, missed, 500);
    let ready = db_now(&db).await;
    let first_after = |all: Vec<(f64, i64)>| all.into_iter().map(|(t, _)| t).find(|t| *t > ready);
    wait_for("a tick after start", Duration::from_secs(15), || async {
        first_after(ticks(&db, "tick").await).is_some()
    })
    .await;
    let t0 = first_after(ticks(&db, "tick").await).unwrap();
    kill_all(&mut engines);
    while db_now(&db).await < t0 + 16.0 {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let mut engines = spawn_engines(&db, 4, cron, missed, 500);
    wait_for(
        "the first tick after the restart",
        Duration::from_secs(20),
        || async {
            ticks(&db, "tick")
                .await
                .iter()
                .any(|(t, _)| *t >= t0 + 20.0)
        },
    )
    .await;
    kill_all(&mut engines);
    let all = ticks(&db, "tick").await;
    assert_once_per_tick(&all);
    let after: Vec<f64> = all
        .iter()
        .filter(|(t, _)| *t > t0)
        .map(|(t, _)| t - t0)
        .collect();
    eprintln!("schedules: {missed} after the outage: ticks T0+{after:?}");
    (db, after)
}

#[actix_rt::test]
async fn skip_enqueues_no_missed_tick_after_all_engines_were_down() {
    let (db, after) = outage("skip").await;
    assert_eq!(after.first(), Some(&20.0), "{after:?}");
    db.cleanup().await;
}

#[actix_rt::test]
async fn coalesce_enqueues_one_run_for_the_missed_ticks() {
    let (db, after) = outage("coalesce").await;
    assert_eq!(&after[..2], &[15.0, 20.0], "{after:?}");
    db.cleanup().await;
}

#[actix_rt::test]
async fn catch_up_enqueues_the_newest_missed_ticks_up_to_its_bound() {
    let (db, after) = outage("catch_up:2").await;
    assert_eq!(&after[..3], &[10.0, 15.0, 20.0], "{after:?}");
    db.cleanup().await;
}

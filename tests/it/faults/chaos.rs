//! Four worker processes drain 20,000 jobs while their listener and pooled backends are
//! killed at random (seeded: set `FAULT_SEED` to replay a run). Every job is completed
//! exactly once, and a job runs twice only after a rescue.

use std::time::{Duration, Instant};

use super::*;
use crate::support::*;

const JOBS: i64 = 20_000;
const WORKERS: usize = 4;

#[actix_rt::test]
async fn four_workers_drain_20k_jobs_under_random_backend_kills() {
    let seed = std::env::var("FAULT_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| fastrand::u64(..));
    println!("chaos: seed {seed} (replay with FAULT_SEED={seed})");
    let mut rng = fastrand::Rng::with_seed(seed);

    let pg = private_server(&[]).await;
    let db = TestDb::at(&pg.url()).await;
    create_ledger(&db.client, &db.schema).await;
    db.query(&format!(
        "SELECT {{schema}}.enqueue('fault', '{{}}', priority => (g % 3) * 50) FROM generate_series(1, {JOBS}) g"
    ))
    .await;
    let specs: Vec<WorkerSpec> = (0..WORKERS)
        .map(|i| WorkerSpec {
            url: db.url.clone(),
            schema: db.schema.clone(),
            name: worker_id(&format!("chaos{i}")),
            lease_ms: 3000,
            poll_ms: 200,
            concurrency: 8,
            mode: "normal".into(),
            max_rescues: 5,
        })
        .collect();
    let started = Instant::now();
    let workers: Vec<Worker> = specs.iter().map(Worker::spawn).collect();

    let live_q = format!("SELECT count(*) FROM \"{}\".jobs", db.schema);
    let mut kills = 0;
    // Liveness, not speed: the fleet must keep finishing jobs through the kills. How fast
    // depends on what else the machine runs (the drain took 60-80 s alone and over 150 s
    // beside four compiling engineers), so the bound is on a stretch without progress.
    let mut progress = (i64::MAX, Instant::now());
    loop {
        let live: i64 = db.client.query_one(&live_q, &[]).await.unwrap().get(0);
        if live == 0 {
            break;
        }
        if live < progress.0 {
            progress = (live, Instant::now());
        }
        assert!(
            progress.1.elapsed() < Duration::from_secs(30),
            "no job finished for 30 s: {live} jobs left after {:?} (seed {seed})",
            started.elapsed()
        );
        assert!(
            started.elapsed() < Duration::from_secs(900),
            "{live} jobs left after {:?} (seed {seed})",
            started.elapsed()
        );
        tokio::time::sleep(Duration::from_millis(rng.u64(100..600))).await;
        let victim = &specs[rng.usize(..WORKERS)];
        let roles: &[&str] = match rng.u8(..3) {
            0 => &["listener"],
            1 => &["engine"],
            _ => &["engine", "app", "listener"],
        };
        kills += terminate(&db.client, &victim.name, roles).await.len();
    }
    let took = started.elapsed();
    metric(
        "chaos",
        &format!("4 workers drained {JOBS} jobs through {kills} backend kills"),
        took,
    );

    drained(&db.client, &db.schema, Duration::from_secs(10)).await;
    let executions = ledger_executions(&db.client, &db.schema).await;
    let audit = audit(&db.client, &db.schema, &[], &executions).await;
    assert_eq!(audit.completed as i64, JOBS, "seed {seed}");
    println!("chaos: {audit:?}, {kills} backends killed, seed {seed}");
    for w in workers {
        w.finish(Duration::from_secs(10)).await;
    }
}

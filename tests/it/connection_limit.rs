//! Twenty engines on a server that cannot give them every connection they could open:
//! `max_connections = 50`, while each engine may open lanes + 3 = 4 for itself, 1 for
//! its listener and `pool_size` = 1 for its handlers (120 in all), and every job runs a
//! query on a handler connection. Running out of connections must degrade the fleet,
//! not stall it: refusals (SQLSTATE 53300) are not treated as an outage, idle
//! connections are given back, an engine claims only with a connection in hand (and,
//! once its handlers' connections are being refused, only when a handler connection is
//! there) and writes its outcomes on it. So every job completes exactly once, on its
//! first attempt, and no claim is left to expire. The same fleet on an unconstrained
//! server gives the figure to compare with (both printed as `CONNECTION-LIMIT` lines).

use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use std::collections::HashMap;
use std::sync::Mutex;

use pglane::{Engine, Job, JobContext, JobError, Lane};
use serde::{Deserialize, Serialize};

use crate::faults::{audit, drained, private_server, worker_id};
use crate::support::*;

/// Executions per job id, across the fleet.
#[derive(Clone, Default)]
struct Executions(Arc<Mutex<HashMap<i64, u32>>>);

/// A job that needs the database: one query on a handler connection.
#[derive(Debug, Serialize, Deserialize)]
struct Touch {}

impl Job for Touch {
    const KIND: &'static str = "touch";

    async fn run(self, ctx: JobContext) -> Result<(), JobError> {
        let conn = ctx.pool().get().await.map_err(JobError::retry)?;
        conn.query_one("SELECT 1", &[])
            .await
            .map_err(JobError::retry)?;
        let seen = ctx.data::<Executions>().expect("registered");
        *seen.0.lock().unwrap().entry(ctx.id()).or_default() += 1;
        Ok(())
    }
}

const ENGINES: usize = 20;
const JOBS: i64 = 10_000;

/// What one fleet run measured.
struct Run {
    jobs_per_s: f64,
    /// Engines that ran at least one job.
    engines_working: usize,
    /// Connection attempts the servers refused for lack of slots, all engines.
    refused: u64,
}

/// Starts the fleet on `url`, enqueues the jobs in one statement, and waits until a
/// separate connection sees every one finished; audits them.
async fn fleet(url: &str, label: &str) -> Run {
    let db = TestDb::at(url).await;
    // The test's own connections come first: once the fleet runs, none may be free.
    let sampler_client = connect(url).await;
    let executions = Executions::default();
    let mut engines: Vec<Engine> = Vec::new();
    for i in 0..ENGINES {
        let engine = db
            .engine()
            .worker_id(worker_id(&format!("conn{i}")))
            .register::<Touch>()
            .data(executions.clone())
            // The default lease: a claim that expired here would mean an engine held
            // jobs it could not finish, which is what this test is about.
            .lease(Duration::from_secs(30))
            .call_timeout(Duration::from_secs(10))
            .lane(Lane::new("default").concurrency(4))
            .pool_size(1)
            .start()
            .await
            .unwrap_or_else(|e| panic!("{label}: engine {i} did not start: {e}"));
        engines.push(engine);
    }
    db.query(&format!(
        "SELECT {{schema}}.enqueue('touch', '{{}}') FROM generate_series(1, {JOBS})"
    ))
    .await;
    let t0 = Instant::now();

    // Sample the server's client connections while the fleet drains.
    let peak = Arc::new(AtomicI64::new(0));
    let seen = peak.clone();
    let sampling = actix_rt::spawn(async move {
        loop {
            if let Ok(row) = sampler_client
                .query_one(
                    "SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'client backend'",
                    &[],
                )
                .await
            {
                seen.fetch_max(row.get(0), Ordering::Relaxed);
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    });
    drained(&db.client, &db.schema, Duration::from_secs(300)).await;
    let wall = t0.elapsed();
    sampling.abort();

    let mut refused = 0;
    for e in &engines {
        if let Ok(s) = e.stats().await {
            refused += s.connections.refused;
            assert!(
                s.connections.open() <= s.connections.engine_max + s.connections.handler_max + 1,
                "{label}: an engine holds more than its bound: {:?}",
                s.connections
            );
        }
    }
    println!(
        "CONNECTION-LIMIT {label}: {JOBS} jobs by {ENGINES} engines in {:.1} s = {:.0} jobs/s \
         (at most {} connections open; {refused} connection attempts refused)",
        wall.as_secs_f64(),
        JOBS as f64 / wall.as_secs_f64(),
        peak.load(Ordering::Relaxed)
    );
    let executions = executions.0.lock().unwrap().clone();
    let found = audit(&db.client, &db.schema, &[], &executions).await;
    assert_eq!(found.completed as i64, JOBS, "{label}: jobs completed");
    assert_eq!(
        found.rescued, 0,
        "{label}: claims expired and were rescued (an engine held jobs it could not finish)"
    );
    let workers: std::collections::HashSet<String> = db
        .query("SELECT DISTINCT worker_id FROM {schema}.jobs_finished")
        .await
        .iter()
        .map(|r| r.get(0))
        .collect();
    for e in engines {
        e.shutdown().await.unwrap();
    }
    db.cleanup().await;
    Run {
        jobs_per_s: JOBS as f64 / wall.as_secs_f64(),
        engines_working: workers.len(),
        refused,
    }
}

#[actix_rt::test]
async fn twenty_engines_share_fifty_connections_and_finish_every_job_once() {
    let (limited, free) = futures_util::join!(
        private_server(&["max_connections = 50"]),
        private_server(&["max_connections = 200"])
    );
    let open = fleet(&free.url(), "unconstrained").await;
    let tight = fleet(&limited.url(), "max_connections = 50").await;
    println!(
        "CONNECTION-LIMIT max_connections = 50 ran {:.2}x the unconstrained throughput; \
         {} of {ENGINES} engines ran jobs ({} unconstrained)",
        tight.jobs_per_s / open.jobs_per_s,
        tight.engines_working,
        open.engines_working
    );
    assert!(
        tight.refused > 0,
        "the limit was never reached: the test proves nothing"
    );
}

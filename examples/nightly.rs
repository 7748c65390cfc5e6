//! A nightly periodic job: a report enqueued at 02:00 Vancouver time by whichever engine
//! gets there first (once, however many engines run), caught up once if every engine
//! was down at 02:00, and run once now because this is a deployment (`run_on_start`).
//!
//! Run it with `cargo run --example nightly`. It uses `DATABASE_URL`, else
//! postgres://postgres@127.0.0.1:5432/test, else a throwaway server started from the
//! local PostgreSQL binaries. It recreates the `pglane_nightly` schema on every run.

use std::time::{Duration, SystemTime};

use pglane::{Engine, Enqueue, Job, JobContext, JobError, Lane, Missed, Schedule};
use serde::{Deserialize, Serialize};
use tokio::sync::mpsc::{unbounded_channel, UnboundedSender};

const SCHEMA: &str = "pglane_nightly";

/// Builds yesterday's sales report.
#[derive(Serialize, Deserialize)]
struct NightlyReport {
    region: String,
}

impl Job for NightlyReport {
    const KIND: &'static str = "nightly_report";

    async fn run(self, ctx: JobContext) -> Result<(), JobError> {
        // A scheduled job's run_at is its tick: the report covers the day before it.
        println!("building the {} report (job {})", self.region, ctx.id());
        tokio::time::sleep(Duration::from_millis(200)).await;
        if let Some(done) = ctx.data::<UnboundedSender<i64>>() {
            let _ = done.send(ctx.id());
        }
        Ok(())
    }
}

#[actix::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    // (`pglane::devdb` needs the `test-util` feature, on for pglane's own examples).
    let (url, _server) = pglane::devdb::database_url().await?;
    let (client, connection) = tokio_postgres::connect(&url, tokio_postgres::NoTls).await?;
    tokio::spawn(connection);
    client
        .batch_execute(&format!("DROP SCHEMA IF EXISTS {SCHEMA} CASCADE"))
        .await?;
    pglane::migrate(&url, SCHEMA).await?;

    let (done, mut reports) = unbounded_channel::<i64>();
    let nightly = Schedule::new("nightly-report", "0 2 * * *")
        .time_zone("America/Vancouver")
        .job(
            Enqueue::new(NightlyReport {
                region: "emea".into(),
            })
            .priority(50),
        )
        // Every engine down at 02:00 (a long deploy, an outage): run once when back.
        .missed(Missed::Coalesce)
        // And once now, since this engine deploys a new definition.
        .run_on_start();
    let engine = Engine::builder(url.as_str())
        .schema(SCHEMA)
        .lane(Lane::new("default").concurrency(4))
        .register::<NightlyReport>()
        .data(done)
        .schedule(nightly)
        .start()
        .await?;
    // Flows (jobs that run after others) are added to this example with their feature:
    // e.g. the report fanning out to one "send to subscriber" job per region.

    let id = reports.recv().await.ok_or("the engine stopped")?;
    println!("report job {id} done (the run on start)");
    let stats = engine.stats().await?;
    for s in &stats.schedules {
        let next = s
            .next_run
            .and_then(|t| t.duration_since(SystemTime::now()).ok());
        println!(
            "schedule {} ({} {}, missed ticks: {}): {}, next run in {:.1} h",
            s.name,
            s.cron,
            s.time_zone,
            s.missed,
            if s.active { "active" } else { "inactive" },
            next.map_or(f64::NAN, |d| d.as_secs_f64() / 3600.0),
        );
    }
    println!(
        "(`cargo run --features cli --bin pglane -- --schema {SCHEMA} schedules` shows the same)"
    );
    engine.shutdown().await?;
    Ok(())
}

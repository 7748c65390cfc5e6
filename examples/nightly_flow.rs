//! A nightly report as a flow (fetch, then render, then mail), started by a periodic job,
//! and a running job cancelled from outside.
//!
//! Run it with `cargo run --example nightly_flow`. It uses `DATABASE_URL`, else
//! postgres://postgres@127.0.0.1:5432/test, else a throwaway server started from the
//! local PostgreSQL binaries. It recreates the `pglane_nightly` schema on every run.

use std::time::Duration;

use pglane::{Engine, Enqueue, Flow, FlowJob, Job, JobContext, JobError, Schedule};
use serde::{Deserialize, Serialize};

const SCHEMA: &str = "pglane_nightly";

/// Fired at 02:00 Paris time every night (and once at start, for the demo): enqueues the
/// night's flow, all or nothing.
#[derive(Serialize, Deserialize)]
struct NightlyReport;

/// One step of the flow; it prints itself, so the order shows.
#[derive(Serialize, Deserialize)]
struct Step {
    name: String,
}

/// A slow job that stops cleanly when cancelled.
#[derive(Serialize, Deserialize)]
struct Reindex;

impl Job for NightlyReport {
    const KIND: &'static str = "nightly_report";

    async fn run(self, ctx: JobContext) -> Result<(), JobError> {
        let step = |name: &str| Enqueue::new(Step { name: name.into() });
        let flow = Flow::new()
            .job(FlowJob::new("mail", step("mail the report")).after("render"))
            .job(FlowJob::new("render", step("render the report")).after("fetch"))
            .job(FlowJob::new("fetch", step("fetch the numbers")));
        let ids = ctx.enqueue_flow(flow).await?;
        println!("nightly report: flow enqueued as jobs {ids:?}");
        Ok(())
    }
}

impl Job for Step {
    const KIND: &'static str = "report_step";

    async fn run(self, ctx: JobContext) -> Result<(), JobError> {
        println!("job {}: {}", ctx.id(), self.name);
        tokio::time::sleep(Duration::from_millis(100)).await;
        Ok(())
    }
}

impl Job for Reindex {
    const KIND: &'static str = "reindex";

    async fn run(self, ctx: JobContext) -> Result<(), JobError> {
        println!(
            "job {}: reindexing (for an hour, unless cancelled)",
            ctx.id()
        );
        tokio::select! {
            _ = tokio::time::sleep(Duration::from_secs(3600)) => Ok(()),
            _ = ctx.cancelled() => {
                println!("job {}: cancel noticed, cleaning up", ctx.id());
                Err(JobError::cancel("stopped on request"))
            }
        }
    }
}

#[actix::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let (url, _server) = pglane::devdb::database_url().await?;
    let (client, conn) = tokio_postgres::connect(&url, tokio_postgres::NoTls).await?;
    tokio::spawn(conn);
    client
        .batch_execute(&format!("DROP SCHEMA IF EXISTS {SCHEMA} CASCADE"))
        .await?;
    pglane::migrate(&url, SCHEMA).await?;

    let nightly = Schedule::new("nightly-report", "0 2 * * *")
        .time_zone("Europe/Paris")
        .job(Enqueue::new(NightlyReport))
        .run_on_start();
    let engine = Engine::builder(&url)
        .schema(SCHEMA)
        .schedule(nightly)
        .register::<NightlyReport>()
        .register::<Step>()
        .register::<Reindex>()
        .start()
        .await?;

    let reindex = engine.enqueue(Enqueue::new(Reindex)).await?;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let outcome = engine
        .cancel_with_reason(reindex, "deploy in progress")
        .await?;
    println!("cancel of job {reindex}: {outcome:?}");

    tokio::time::sleep(Duration::from_secs(2)).await;
    for row in client
        .query(
            &format!("SELECT id, kind, state FROM {SCHEMA}.all_jobs ORDER BY id"),
            &[],
        )
        .await?
    {
        let (id, kind, state): (i64, String, String) = (row.get(0), row.get(1), row.get(2));
        println!("{id:>3} {kind:<15} {state}");
    }
    engine.shutdown().await?;
    Ok(())
}

//! A worker process for pglane's fault-injection tests (tests/it/faults): the tests
//! start several, then kill, stop and restart them while they drain a queue.
//!
//! Run: `cargo run --example fault_worker -- URL SCHEMA NAME LEASE_MS POLL_MS CONCURRENCY
//! MODE [MAX_RESCUES]`, MODE being `normal` (2 ms per job), `sleep:MS`, or `poison-abort`
//! (like `normal`, but a job with `"poison": true` aborts the process). The schema must be
//! migrated and hold a `ledger` table (see `tests/it/faults/mod.rs`): every run inserts
//! a row when it starts and sets `finished_at` when it ends, so tests count executions
//! and completions apart. Prints `ready` once listening; exits cleanly when stdin closes.

use std::io::BufRead;
use std::time::Duration;

use pglane::{Engine, Job, JobContext, JobError, Lane, ListenerMode};
use serde::{Deserialize, Serialize};

/// The test job: what it does is decided by the worker's mode and the `poison` flag.
#[derive(Serialize, Deserialize)]
struct FaultJob {
    #[serde(default)]
    poison: bool,
}

#[derive(Clone, Copy)]
enum Mode {
    Sleep(u64),
    PoisonAbort,
}

/// Who this process is, for the ledger.
struct Me {
    process: String,
    mode: Mode,
    /// `"schema".ledger`.
    ledger: String,
}

impl Job for FaultJob {
    const KIND: &'static str = "fault";

    async fn run(self, ctx: JobContext) -> Result<(), JobError> {
        let me = ctx.data::<Me>().ok_or(JobError::cancel("no worker data"))?;
        let sql = format!(
            "INSERT INTO {} (job_id, attempt, lease_token, process) VALUES ($1, $2, $3, $4)",
            me.ledger
        );
        let p = &me.process;
        ledger(
            &ctx,
            &sql,
            &[&ctx.id(), &ctx.attempt(), &ctx.lease_token(), p],
        )
        .await?;
        match me.mode {
            Mode::PoisonAbort if self.poison => std::process::abort(),
            Mode::PoisonAbort => tokio::time::sleep(Duration::from_millis(2)).await,
            Mode::Sleep(ms) => tokio::time::sleep(Duration::from_millis(ms)).await,
        }
        let sql = format!(
            "UPDATE {} SET finished_at = clock_timestamp() WHERE job_id = $1 AND lease_token = $2",
            me.ledger
        );
        ledger(&ctx, &sql, &[&ctx.id(), &ctx.lease_token()]).await
    }
}

/// Writes to the ledger through the engine's pool, retrying through the connection
/// faults the tests inject (a ledger gap would look like a lost execution).
async fn ledger(
    ctx: &JobContext,
    sql: &str,
    params: &[&(dyn tokio_postgres::types::ToSql + Sync)],
) -> Result<(), JobError> {
    let mut last = String::new();
    for _ in 0..100 {
        match ctx.pool().get().await {
            Ok(conn) => match conn.execute(sql, params).await {
                Ok(_) => return Ok(()),
                Err(e) => last = e.to_string(),
            },
            Err(e) => last = e.to_string(),
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    Err(JobError::retry(format!("ledger write failed: {last}")))
}

fn main() {
    tracing_subscriber::fmt()
        .with_env_filter(std::env::var("RUST_LOG").unwrap_or_else(|_| "pglane=info".into()))
        .with_writer(std::io::stderr)
        .init();
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.len() < 7 {
        eprintln!(
            "usage: fault_worker URL SCHEMA NAME LEASE_MS POLL_MS CONCURRENCY MODE [MAX_RESCUES]"
        );
        std::process::exit(2);
    }
    let num = |i: usize| -> u64 { args[i].parse().expect("a number") };
    let mode = match args[6].as_str() {
        "normal" => Mode::Sleep(2),
        "poison-abort" => Mode::PoisonAbort,
        other => Mode::Sleep(
            other
                .strip_prefix("sleep:")
                .expect("a mode")
                .parse()
                .unwrap(),
        ),
    };
    let lease = Duration::from_millis(num(3));
    let poll = Duration::from_millis(num(4));
    let me = Me {
        process: format!("{}/{}", args[2], std::process::id()),
        mode,
        ledger: format!("\"{}\".ledger", args[1]),
    };
    let concurrency = num(5) as u32;
    let max_rescues = args.get(7).map_or(5, |s| s.parse().expect("a number"));
    actix::System::new().block_on(async move {
        let engine = Engine::builder(args[0].as_str())
            .schema(args[1].clone())
            .worker_id(args[2].clone())
            .lane(Lane::new("default").concurrency(concurrency))
            .register::<FaultJob>()
            .data(me)
            .lease(lease)
            .call_timeout(lease / 2)
            .maintenance_interval(lease / 4)
            .max_rescues(max_rescues)
            .poll_interval(poll)
            .poll_interval_without_listener(poll / 2)
            .listener_health_interval(Duration::from_secs(1))
            .start()
            .await
            .expect("engine start");
        while !matches!(engine.stats().await, Ok(s) if s.listener.mode == ListenerMode::Notify) {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        println!("ready");
        // Run until the test closes our stdin (or kills us).
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        std::thread::spawn(move || {
            for _ in std::io::stdin().lock().lines().map_while(Result::ok) {}
            let _ = tx.send(());
        });
        let _ = rx.await;
        let _ = engine.shutdown_within(Duration::from_secs(5)).await;
    });
}

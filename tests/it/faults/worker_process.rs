//! The worker process of the fault tests: this test binary, run again with
//! [`WORKER_ROLE`] set (see [`Worker`](super::Worker) and
//! [`helper_process`](crate::support::helper_process)). The tests start several, then
//! kill, stop and restart them while they drain a queue.
//!
//! A worker runs one engine on the spec's schema, which must be migrated and hold a
//! `ledger` table ([`create_ledger`](super::create_ledger)): every run inserts a row when
//! it starts and sets `finished_at` when it ends, so tests count executions and
//! completions apart. It prints [`READY`] once listening and shuts down cleanly when its
//! stdin closes. Its mode: `normal` (2 ms per job), `sleep:MS`, `cancellable:MS` (like
//! `sleep:MS`, but stops when cancelled, finishing its ledger row then), `fail:MS`
//! (sleeps, finishes its ledger row, fails: a retry), or `poison-abort` (like `normal`,
//! but a job with `"poison": true` aborts the process). Cancelled runs are aborted
//! after 500 ms.

use std::io::BufRead;
use std::time::Duration;

use pglane::{Engine, Job, JobContext, JobError, Lane, ListenerMode};
use serde::{Deserialize, Serialize};

use super::WorkerSpec;

/// The environment variable that makes the entry test a worker: the spec, as JSON.
pub const WORKER_ROLE: &str = "PGLANE_FAULT_WORKER";

/// What a worker prints once its listener is subscribed.
pub const READY: &str = "pglane fault worker ready";

/// The libtest path of [`fault_worker_process`].
pub fn entry() -> String {
    crate::support::test_path(module_path!(), "fault_worker_process")
}

/// Not a test: the worker process's `main`. Passes at once in a normal test run.
#[test]
fn fault_worker_process() {
    let Ok(spec) = std::env::var(WORKER_ROLE) else {
        return;
    };
    let spec: WorkerSpec = serde_json::from_str(&spec).expect("a worker spec in JSON");
    run(spec);
}

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
    /// Sleeps, but stops as soon as the run is cancelled (the ledger row is finished
    /// then, at the moment the handler noticed).
    Cancellable(u64),
    /// Sleeps, then fails (a retry).
    Fail(u64),
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
        let finish = format!(
            "UPDATE {} SET finished_at = clock_timestamp() WHERE job_id = $1 AND lease_token = $2",
            me.ledger
        );
        match me.mode {
            Mode::PoisonAbort if self.poison => std::process::abort(),
            Mode::PoisonAbort => tokio::time::sleep(Duration::from_millis(2)).await,
            Mode::Sleep(ms) => tokio::time::sleep(Duration::from_millis(ms)).await,
            Mode::Fail(ms) => {
                tokio::time::sleep(Duration::from_millis(ms)).await;
                ledger(&ctx, &finish, &[&ctx.id(), &ctx.lease_token()]).await?;
                return Err(JobError::retry("fails on purpose"));
            }
            Mode::Cancellable(ms) => {
                tokio::select! {
                    _ = tokio::time::sleep(Duration::from_millis(ms)) => {}
                    _ = ctx.cancelled() => {
                        ledger(&ctx, &finish, &[&ctx.id(), &ctx.lease_token()]).await?;
                        return Err(JobError::cancel("noticed the cancel"));
                    }
                }
            }
        }
        ledger(&ctx, &finish, &[&ctx.id(), &ctx.lease_token()]).await
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

fn run(spec: WorkerSpec) {
    tracing_subscriber::fmt()
        .with_env_filter(std::env::var("RUST_LOG").unwrap_or_else(|_| "pglane=info".into()))
        .with_writer(std::io::stderr)
        .init();
    let mode = match spec.mode.as_str() {
        "normal" => Mode::Sleep(2),
        "poison-abort" => Mode::PoisonAbort,
        other => {
            let (name, ms) = other
                .split_once(':')
                .and_then(|(n, ms)| Some((n, ms.parse().ok()?)))
                .unwrap_or_else(|| panic!("unknown worker mode {other:?}"));
            match name {
                "sleep" => Mode::Sleep(ms),
                "cancellable" => Mode::Cancellable(ms),
                "fail" => Mode::Fail(ms),
                _ => panic!("unknown worker mode {other:?}"),
            }
        }
    };
    let lease = Duration::from_millis(spec.lease_ms);
    let poll = Duration::from_millis(spec.poll_ms);
    let me = Me {
        process: format!("{}/{}", spec.name, std::process::id()),
        mode,
        ledger: format!("\"{}\".ledger", spec.schema),
    };
    actix::System::new().block_on(async move {
        let engine = Engine::builder(spec.url.as_str())
            .schema(spec.schema.clone())
            .worker_id(spec.name.clone())
            .lane(Lane::new("default").concurrency(spec.concurrency))
            .register::<FaultJob>()
            .data(me)
            .lease(lease)
            .call_timeout(lease / 2)
            .maintenance_interval(lease / 4)
            .max_rescues(spec.max_rescues)
            .cancel_grace(Duration::from_millis(500))
            .poll_interval(poll)
            .poll_interval_without_listener(poll / 2)
            .listener_health_interval(Duration::from_secs(1))
            .start()
            .await
            .expect("engine start");
        while !matches!(engine.stats().await, Ok(s) if s.listener.mode == ListenerMode::Notify) {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        println!("{READY}");
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

//! Fault injection: real faults against real PostgreSQL servers and real processes.
//!
//! Each scenario injects one fault (a killed backend, a read-only flip, a restart, a
//! failover, a killed or frozen worker process, a misbehaving handler) under load and
//! checks that nothing is lost, that no job is completed twice, and that the engine
//! recovers within a bound. Recovery times are printed as `FAULT-METRIC` lines (run with
//! `--nocapture` to see them).
//!
//! Faults that touch the whole server (read-only, restart, failover, random kills) run
//! on a private throwaway server ([`private_server`]); the others run on the shared one
//! and only ever touch backends tagged with the test's own, unique worker id.
//!
//! Tools here: [`Work`] (an in-process job that records every execution in a [`Tally`]),
//! [`Feeder`] (a steady enqueue stream that survives outages), [`Worker`] (a child
//! process running `examples/fault_worker`), a ledger table for those children, and
//! helpers to find and kill backends.

#![allow(dead_code)]

mod bad_input;
mod chaos;
mod failover;
mod handlers;
mod listener_killed;
mod poison;
mod pool_killed;
mod read_only;
mod restart;
mod subscription_lost;
mod worker_killed;
mod worker_stopped;

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Write};
use std::path::PathBuf;
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use pglane::devdb::TempPostgres;
use pglane::{Backoff, EngineBuilder, Job, JobContext, JobError};
use serde::{Deserialize, Serialize};
use tokio_postgres::{Client, NoTls};

use crate::support::TestDb;

/// Prints a measured figure in a greppable form.
pub fn metric(scenario: &str, what: &str, d: Duration) {
    println!("FAULT-METRIC {scenario}: {what} = {} ms", d.as_millis());
}

/// Waits until `f` answers `Some`, checking every 20 ms, failing after `timeout`.
pub async fn wait_some<T, F, Fut>(what: &str, timeout: Duration, mut f: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(v) = f().await {
            return v;
        }
        assert!(
            Instant::now() < deadline,
            "timed out after {timeout:?} waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// A unique worker id, so a test finds (and kills) only its own backends.
pub fn worker_id(scenario: &str) -> String {
    format!("fault-{scenario}-{:08x}", fastrand::u32(..))
}

/// Builder settings shared by the in-process fault scenarios: the test timings of
/// [`TestDb::engine`], plus a reconnect backoff capped at 1 s so an outage's end is
/// noticed within about a second (the default cap is 10 s).
///
/// With `FAULT_DEFAULT_BACKOFF=1` the default backoff is kept instead, to measure
/// recovery times with default settings (bounds may then be exceeded).
pub fn fault_engine(db: &TestDb, id: &str, tally: &Tally) -> EngineBuilder {
    let builder = db
        .engine()
        .worker_id(id)
        .register::<Work>()
        .data(tally.clone());
    if std::env::var_os("FAULT_DEFAULT_BACKOFF").is_some() {
        return builder;
    }
    builder.reconnect_backoff(Backoff {
        base: Duration::from_millis(100),
        max: Duration::from_secs(1),
        jitter: 0.3,
    })
}

/// A recovery bound: as given, or 15 s longer with `FAULT_DEFAULT_BACKOFF` (the default
/// probe backoff is capped at 10 s, so it cannot meet the tighter bounds).
pub fn bound(d: Duration) -> Duration {
    if std::env::var_os("FAULT_DEFAULT_BACKOFF").is_some() {
        d + Duration::from_secs(15)
    } else {
        d
    }
}

// ---------------------------------------------------------------------------------------
// Private servers

/// Starts a private server (off the async thread: initdb takes a while).
pub async fn private_server(extra_conf: &[&str]) -> TempPostgres {
    let extra: Vec<String> = extra_conf.iter().map(|s| s.to_string()).collect();
    blocking(move || {
        let refs: Vec<&str> = extra.iter().map(String::as_str).collect();
        let pg = TempPostgres::init(&refs)?;
        pg.start_server()?;
        Ok(pg)
    })
    .await
}

/// Runs a blocking server command (pg_ctl…) off the async thread; panics on failure.
pub async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, String> + Send + 'static,
) -> T {
    tokio::task::spawn_blocking(f)
        .await
        .expect("blocking task")
        .unwrap_or_else(|e| panic!("server command failed: {e}"))
}

/// Connects, retrying for up to `timeout` (the server may be restarting).
pub async fn connect_retry(url: &str, timeout: Duration) -> Client {
    let deadline = Instant::now() + timeout;
    loop {
        match tokio_postgres::connect(url, NoTls).await {
            Ok((client, conn)) => {
                actix_rt::spawn(async move {
                    let _ = conn.await;
                });
                return client;
            }
            Err(e) => {
                assert!(Instant::now() < deadline, "could not connect to {url}: {e}");
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    }
}

/// The server's clock: fault times are compared with `started_at`/`finished_at`.
pub async fn server_now(client: &Client) -> SystemTime {
    client
        .query_one("SELECT clock_timestamp()", &[])
        .await
        .expect("server clock")
        .get(0)
}

/// How long after `since` (server clock) the `n`-th job *claimed* after it completed,
/// if it has: the whole pipeline (claim, run, complete) works again.
pub async fn nth_completion_after(
    client: &Client,
    schema: &str,
    since: SystemTime,
    n: i64,
) -> Option<Duration> {
    let q = format!(
        "SELECT finished_at FROM \"{schema}\".jobs_finished WHERE started_at > $1 \
         ORDER BY finished_at OFFSET $2 LIMIT 1"
    );
    let rows = client.query(&q, &[&since, &(n - 1)]).await.ok()?;
    rows.first().map(|r| {
        r.get::<_, SystemTime>(0)
            .duration_since(since)
            .unwrap_or_default()
    })
}

// ---------------------------------------------------------------------------------------
// Backends

/// A backend of ours, from `pg_stat_activity`.
#[derive(Debug, Clone)]
pub struct Backend {
    pub pid: i32,
    pub app: String,
    pub started: SystemTime,
}

/// The backends whose `application_name` is `pglane <role> <id>` for one of `roles`.
pub async fn backends(client: &Client, id: &str, roles: &[&str]) -> Vec<Backend> {
    let names: Vec<String> = roles.iter().map(|r| format!("pglane {r} {id}")).collect();
    client
        .query(
            "SELECT pid, application_name, backend_start FROM pg_stat_activity \
             WHERE application_name = ANY($1) AND pid <> pg_backend_pid()",
            &[&names],
        )
        .await
        .expect("pg_stat_activity")
        .iter()
        .map(|r| Backend {
            pid: r.get(0),
            app: r.get(1),
            started: r.get(2),
        })
        .collect()
}

/// `pg_terminate_backend` on every backend of `id` with one of `roles`; returns them.
pub async fn terminate(client: &Client, id: &str, roles: &[&str]) -> Vec<Backend> {
    let victims = backends(client, id, roles).await;
    for b in &victims {
        client
            .query_one("SELECT pg_terminate_backend($1)", &[&b.pid])
            .await
            .expect("pg_terminate_backend");
    }
    victims
}

// ---------------------------------------------------------------------------------------
// The in-process job and its tally

/// The in-process fault job: sleeps `sleep_ms`, recording its start and end in the
/// engine's [`Tally`].
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Work {
    #[serde(default)]
    pub sleep_ms: u64,
}

/// One execution of a job, as its handler saw it.
#[derive(Debug, Clone)]
pub struct Run {
    pub id: i64,
    pub attempt: i32,
    pub token: i64,
    pub started: Instant,
    pub finished: Option<Instant>,
}

/// Every execution of every [`Work`] job of one test.
#[derive(Clone, Default)]
pub struct Tally(Arc<Mutex<Vec<Run>>>);

impl Tally {
    pub fn runs(&self) -> Vec<Run> {
        self.0.lock().unwrap().clone()
    }

    /// Executions per job id.
    pub fn executions(&self) -> HashMap<i64, u32> {
        let mut m = HashMap::new();
        for r in self.0.lock().unwrap().iter() {
            *m.entry(r.id).or_insert(0) += 1;
        }
        m
    }

    /// The first start of job `id`, if it started.
    pub fn started(&self, id: i64) -> Option<Instant> {
        self.0
            .lock()
            .unwrap()
            .iter()
            .find(|r| r.id == id)
            .map(|r| r.started)
    }

    /// How many runs are in their handler now.
    pub fn in_flight(&self) -> usize {
        self.0
            .lock()
            .unwrap()
            .iter()
            .filter(|r| r.finished.is_none())
            .count()
    }
}

impl Job for Work {
    const KIND: &'static str = "work";

    async fn run(self, ctx: JobContext) -> Result<(), JobError> {
        let tally = ctx.data::<Tally>().expect("a Tally is registered").clone();
        tally.0.lock().unwrap().push(Run {
            id: ctx.id(),
            attempt: ctx.attempt(),
            token: ctx.lease_token(),
            started: Instant::now(),
            finished: None,
        });
        tokio::time::sleep(Duration::from_millis(self.sleep_ms)).await;
        let mut runs = tally.0.lock().unwrap();
        if let Some(r) = runs
            .iter_mut()
            .find(|r| r.id == ctx.id() && r.token == ctx.lease_token())
        {
            r.finished = Some(Instant::now());
        }
        Ok(())
    }
}

// ---------------------------------------------------------------------------------------
// A steady enqueue stream

/// Enqueues `batch` jobs of `kind` with `args` every `every` through the schema's SQL
/// function, on its own connection (reconnecting through outages), and records the ids
/// the database acknowledged. A call whose answer was lost may still have inserted
/// jobs: the final checks therefore look at every job in the schema, not only these.
pub struct Feeder {
    stop: Arc<AtomicBool>,
    ids: Arc<Mutex<Vec<i64>>>,
    errors: Arc<Mutex<u64>>,
    task: tokio::task::JoinHandle<()>,
}

impl Feeder {
    pub fn start(
        url: &str,
        schema: &str,
        kind: &str,
        args: &str,
        batch: i32,
        every: Duration,
    ) -> Feeder {
        let stop = Arc::new(AtomicBool::new(false));
        let ids = Arc::new(Mutex::new(Vec::new()));
        let errors = Arc::new(Mutex::new(0u64));
        let sql =
            format!("SELECT \"{schema}\".enqueue($1, $2::text::jsonb) FROM generate_series(1, $3)");
        let (url, kind, args) = (url.to_string(), kind.to_string(), args.to_string());
        let (stop2, ids2, errors2) = (stop.clone(), ids.clone(), errors.clone());
        let task = actix_rt::spawn(async move {
            let mut client: Option<Client> = None;
            while !stop2.load(Ordering::Relaxed) {
                if client.as_ref().is_none_or(|c| c.is_closed()) {
                    let connect = tokio_postgres::connect(&url, NoTls);
                    client = match tokio::time::timeout(Duration::from_secs(2), connect).await {
                        Ok(Ok((c, conn))) => {
                            actix_rt::spawn(async move {
                                let _ = conn.await;
                            });
                            Some(c)
                        }
                        _ => None,
                    };
                }
                if let Some(c) = &client {
                    let params: [&(dyn tokio_postgres::types::ToSql + Sync); 3] =
                        [&kind, &args, &batch];
                    let call = c.query(&sql, &params);
                    match tokio::time::timeout(Duration::from_secs(2), call).await {
                        Ok(Ok(rows)) => ids2
                            .lock()
                            .unwrap()
                            .extend(rows.iter().map(|r| r.get::<_, i64>(0))),
                        _ => {
                            *errors2.lock().unwrap() += 1;
                            client = None;
                        }
                    }
                }
                tokio::time::sleep(every).await;
            }
        });
        Feeder {
            stop,
            ids,
            errors,
            task,
        }
    }

    /// Ids acknowledged so far.
    pub fn count(&self) -> usize {
        self.ids.lock().unwrap().len()
    }

    /// Stops the stream; returns the acknowledged ids and how many calls failed.
    pub async fn stop(self) -> (Vec<i64>, u64) {
        self.stop.store(true, Ordering::Relaxed);
        let _ = self.task.await;
        let ids = self.ids.lock().unwrap().clone();
        let errors = *self.errors.lock().unwrap();
        (ids, errors)
    }
}

// ---------------------------------------------------------------------------------------
// Final checks

/// What the final check found, for reports.
#[derive(Debug, Default)]
pub struct Audit {
    pub completed: usize,
    /// Jobs that ran more than once (each had been rescued).
    pub reruns: usize,
    /// Jobs completed after at least one rescue.
    pub rescued: usize,
}

/// Waits (up to `timeout`) until the schema has no live job; shows some if it fails.
pub async fn drained(client: &Client, schema: &str, timeout: Duration) {
    let deadline = Instant::now() + timeout;
    let live_q = format!("SELECT count(*) FROM \"{schema}\".jobs");
    loop {
        let live: i64 = client.query_one(&live_q, &[]).await.unwrap().get(0);
        if live == 0 {
            return;
        }
        if Instant::now() > deadline {
            let rows = client
                .query(
                    &format!(
                        "SELECT id, state, attempt, rescues, lease_until::text, worker_id, errors::text \
                         FROM \"{schema}\".jobs ORDER BY id LIMIT 10"
                    ),
                    &[],
                )
                .await
                .unwrap();
            for r in rows {
                eprintln!(
                    "live: id {} {} attempt {} rescues {} lease {:?} worker {:?} errors {}",
                    r.get::<_, i64>(0),
                    r.get::<_, String>(1),
                    r.get::<_, i32>(2),
                    r.get::<_, i32>(3),
                    r.get::<_, Option<String>>(4),
                    r.get::<_, Option<String>>(5),
                    r.get::<_, String>(6)
                );
            }
            panic!("{live} jobs still live after {timeout:?}");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Once [`drained`], checks that every job (the `acked` ids and any other) is completed
/// exactly once, with attempt 1 (no attempt charged), that it ran at least once, and
/// that a job ran twice only after a rescue. `executions` maps job id to executions seen
/// by handlers (read it after draining).
pub async fn audit(
    client: &Client,
    schema: &str,
    acked: &[i64],
    executions: &HashMap<i64, u32>,
) -> Audit {
    let rows = client
        .query(
            &format!(
                "SELECT id, state, attempt, rescues, errors::text FROM \"{schema}\".jobs_finished"
            ),
            &[],
        )
        .await
        .unwrap();
    let mut finished: HashMap<i64, (String, i32, i32, String)> = HashMap::new();
    for r in &rows {
        let prev = finished.insert(
            r.get(0),
            (r.get(1), r.get(2), r.get(3), r.get::<_, String>(4)),
        );
        assert!(prev.is_none(), "job {} finished twice", r.get::<_, i64>(0));
    }
    let mut out = Audit::default();
    for id in acked {
        assert!(finished.contains_key(id), "acknowledged job {id} was lost");
    }
    for (id, (state, attempt, rescues, errors)) in &finished {
        assert_eq!(state, "completed", "job {id}: {errors}");
        assert_eq!(
            *attempt, 1,
            "job {id} was charged an attempt (rescues {rescues}): {errors}"
        );
        let ran = executions.get(id).copied().unwrap_or(0);
        assert!(ran >= 1, "job {id} completed without running");
        if ran > 1 {
            assert!(*rescues > 0, "job {id} ran {ran} times without a rescue");
            out.reruns += 1;
        }
        if *rescues > 0 {
            out.rescued += 1;
        }
    }
    out.completed = finished.len();
    out
}

// ---------------------------------------------------------------------------------------
// Worker processes (examples/fault_worker)

/// Creates the ledger the worker processes write every execution to.
pub async fn create_ledger(client: &Client, schema: &str) {
    client
        .batch_execute(&format!(
            "CREATE TABLE \"{schema}\".ledger (
                job_id      bigint      NOT NULL,
                attempt     integer     NOT NULL,
                lease_token bigint      NOT NULL,
                process     text        NOT NULL,
                started_at  timestamptz NOT NULL DEFAULT clock_timestamp(),
                finished_at timestamptz
            )"
        ))
        .await
        .expect("create ledger");
}

/// One ledger row.
#[derive(Debug, Clone)]
pub struct LedgerRow {
    pub job_id: i64,
    pub attempt: i32,
    pub token: i64,
    pub process: String,
    pub finished: bool,
}

pub async fn ledger(client: &Client, schema: &str, where_: &str) -> Vec<LedgerRow> {
    client
        .query(
            &format!(
                "SELECT job_id, attempt, lease_token, process, finished_at IS NOT NULL \
                 FROM \"{schema}\".ledger WHERE {where_} ORDER BY started_at"
            ),
            &[],
        )
        .await
        .expect("ledger")
        .iter()
        .map(|r| LedgerRow {
            job_id: r.get(0),
            attempt: r.get(1),
            token: r.get(2),
            process: r.get(3),
            finished: r.get(4),
        })
        .collect()
}

/// Executions per job id, from the ledger.
pub async fn ledger_executions(client: &Client, schema: &str) -> HashMap<i64, u32> {
    client
        .query(
            &format!("SELECT job_id, count(*) FROM \"{schema}\".ledger GROUP BY job_id"),
            &[],
        )
        .await
        .expect("ledger counts")
        .iter()
        .map(|r| (r.get(0), r.get::<_, i64>(1) as u32))
        .collect()
}

/// The worker binary, built by `cargo test` next to the test binary.
pub fn worker_exe() -> PathBuf {
    let exe = std::env::current_exe().expect("current exe");
    // target/<profile>/deps/it-<hash> -> target/<profile>/examples/fault_worker
    let path = exe
        .parent()
        .and_then(|deps| deps.parent())
        .map(|profile| profile.join("examples").join("fault_worker"))
        .expect("target directory");
    assert!(
        path.exists(),
        "{} is missing: it is built by a plain `cargo test`; with a filter such as \
         `--test it`, run `cargo build --example fault_worker` first",
        path.display()
    );
    path
}

/// How to start a worker process.
#[derive(Debug, Clone)]
pub struct WorkerSpec {
    pub url: String,
    pub schema: String,
    pub name: String,
    pub lease_ms: u64,
    pub poll_ms: u64,
    pub concurrency: u32,
    /// `normal`, `sleep:MS` or `poison-abort`.
    pub mode: String,
    pub max_rescues: i32,
}

/// A running `fault_worker` child. Killed (SIGKILL) on drop; its log is printed if the
/// test is failing.
pub struct Worker {
    pub spec: WorkerSpec,
    child: Child,
    stdin: Option<ChildStdin>,
    log: Arc<Mutex<Vec<String>>>,
    ready: std::sync::mpsc::Receiver<()>,
}

impl Worker {
    /// Starts a worker and waits until it says `ready` (listening).
    pub async fn start(spec: &WorkerSpec) -> Worker {
        let mut w = Self::spawn(spec);
        w.wait_ready(Duration::from_secs(30)).await;
        w
    }

    /// Starts a worker without waiting for it.
    pub fn spawn(spec: &WorkerSpec) -> Worker {
        let mut child = Command::new(worker_exe())
            .args([
                &spec.url,
                &spec.schema,
                &spec.name,
                &spec.lease_ms.to_string(),
                &spec.poll_ms.to_string(),
                &spec.concurrency.to_string(),
                &spec.mode,
                &spec.max_rescues.to_string(),
            ])
            .env("RUST_LOG", "pglane=debug")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn fault_worker");
        let log = Arc::new(Mutex::new(Vec::new()));
        let (ready_tx, ready) = std::sync::mpsc::channel();
        let stdout = child.stdout.take().expect("stdout");
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if line.trim() == "ready" {
                    let _ = ready_tx.send(());
                }
            }
        });
        let stderr = child.stderr.take().expect("stderr");
        let log2 = log.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                log2.lock().unwrap().push(line);
            }
        });
        Worker {
            spec: spec.clone(),
            stdin: child.stdin.take(),
            child,
            log,
            ready,
        }
    }

    pub async fn wait_ready(&mut self, timeout: Duration) {
        let deadline = Instant::now() + timeout;
        loop {
            match self.ready.try_recv() {
                Ok(()) => return,
                Err(std::sync::mpsc::TryRecvError::Disconnected) => {
                    self.dump();
                    panic!("worker {} exited before it was ready", self.spec.name)
                }
                Err(std::sync::mpsc::TryRecvError::Empty) => {}
            }
            if Instant::now() > deadline {
                self.dump();
                panic!("worker {} not ready within {timeout:?}", self.spec.name);
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// SIGKILL, and reap.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Sends a signal by name (`STOP`, `CONT`).
    pub fn signal(&self, sig: &str) {
        let ok = Command::new("kill")
            .args([format!("-{sig}"), self.pid().to_string()])
            .status()
            .expect("kill")
            .success();
        assert!(ok, "kill -{sig} {}", self.pid());
    }

    /// Whether the process has exited (reaping it if so).
    pub fn exited(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(Some(_)))
    }

    /// Closes stdin: the worker shuts down gracefully and exits.
    pub async fn finish(mut self, timeout: Duration) {
        drop(self.stdin.take());
        let deadline = Instant::now() + timeout;
        while !self.exited() {
            if Instant::now() > deadline {
                self.dump();
                panic!("worker {} did not exit within {timeout:?}", self.spec.name);
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Waits until a log line contains `needle`.
    pub async fn wait_log(&self, needle: &str, timeout: Duration) {
        let deadline = Instant::now() + timeout;
        while !self.log.lock().unwrap().iter().any(|l| l.contains(needle)) {
            if Instant::now() > deadline {
                self.dump();
                panic!("worker {} never logged {needle:?}", self.spec.name);
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    pub fn log_lines(&self) -> Vec<String> {
        self.log.lock().unwrap().clone()
    }

    pub fn dump(&self) {
        let log = self.log.lock().unwrap();
        eprintln!("---- last lines of worker {} ----", self.spec.name);
        for l in log
            .iter()
            .rev()
            .take(40)
            .collect::<Vec<_>>()
            .into_iter()
            .rev()
        {
            eprintln!("{l}");
        }
    }
}

impl Drop for Worker {
    fn drop(&mut self) {
        if std::thread::panicking() {
            self.dump();
        }
        if let Some(mut stdin) = self.stdin.take() {
            let _ = stdin.flush();
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

//! Test support: a fresh schema per test, an engine with short timings, a probe job that
//! reports what it does, and `wait_for` helpers that wait for events with a deadline.

#![allow(dead_code)]

use std::cell::RefCell;
use std::future::Future;
use std::io::Write;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use pglane::devdb::TempPostgres;
use pglane::{Backoff, Engine, EngineBuilder, Job, JobContext, JobError};
use serde::{Deserialize, Serialize};
use tokio::sync::mpsc;
use tokio_postgres::{Client, NoTls};

/// The database every test uses: `DATABASE_URL`, else the local default, else a
/// throwaway server started once for the whole test binary.
pub fn database_url() -> &'static str {
    static URL: OnceLock<(String, Option<TempPostgres>)> = OnceLock::new();
    let (url, _) = URL.get_or_init(|| {
        std::thread::spawn(|| {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(pglane::devdb::database_url())
                .unwrap_or_else(|e| panic!("no database for the tests: {e}"))
        })
        .join()
        .unwrap()
    });
    url
}

/// A fresh, migrated schema, dropped by [`TestDb::cleanup`] when the test passes.
pub struct TestDb {
    pub url: String,
    pub schema: String,
    pub client: Client,
}

impl TestDb {
    pub async fn new() -> TestDb {
        Self::at(database_url()).await
    }

    pub async fn at(url: &str) -> TestDb {
        let schema = format!("t_{:016x}", fastrand::u64(..));
        pglane::migrate(url, &schema).await.expect("migrate");
        let client = connect(url).await;
        TestDb {
            url: url.to_string(),
            schema,
            client,
        }
    }

    /// A started engine with test timings that runs `Probe` jobs whose events nobody
    /// reads: for tests that drive the engine's doors (enqueue, cancel, flows), not
    /// its handlers.
    pub async fn probe_engine(&self) -> Engine {
        self.engine()
            .register::<Probe>()
            .data(Events::new().sender())
            .start()
            .await
            .unwrap()
    }

    /// An engine builder on this schema with test timings: fast polls, short leases and
    /// backoffs, so failure paths finish in well under a second.
    pub fn engine(&self) -> EngineBuilder {
        Engine::builder(self.url.as_str())
            .schema(self.schema.clone())
            .poll_interval(Duration::from_millis(200))
            .poll_interval_without_listener(Duration::from_millis(100))
            .lease(Duration::from_secs(5))
            .call_timeout(Duration::from_secs(3))
            .maintenance_interval(Duration::from_millis(300))
            .shutdown_grace(Duration::from_secs(5))
            .retry_backoff(Backoff {
                base: Duration::from_millis(20),
                max: Duration::from_millis(100),
                jitter: 0.0,
            })
    }

    /// `SELECT count(*)` of `sql_where` over live + finished jobs (`all_jobs`).
    pub async fn count(&self, sql_where: &str) -> i64 {
        let q = format!(
            "SELECT count(*) FROM \"{}\".all_jobs WHERE {sql_where}",
            self.schema
        );
        self.client.query_one(&q, &[]).await.unwrap().get(0)
    }

    pub async fn query(&self, sql: &str) -> Vec<tokio_postgres::Row> {
        let sql = sql.replace("{schema}", &format!("\"{}\"", self.schema));
        self.client
            .query(&sql, &[])
            .await
            .unwrap_or_else(|e| panic!("{sql}: {e}"))
    }

    /// Waits until `count(sql_where) == n`, failing after `timeout`.
    pub async fn wait_count(&self, sql_where: &str, n: i64, timeout: Duration) {
        let deadline = Instant::now() + timeout;
        loop {
            let got = self.count(sql_where).await;
            if got == n {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "waited {timeout:?} for {n} jobs where {sql_where}; have {got}"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    pub async fn cleanup(self) {
        self.client
            .batch_execute(&format!("DROP SCHEMA \"{}\" CASCADE", self.schema))
            .await
            .expect("drop schema");
    }
}

pub async fn connect(url: &str) -> Client {
    let (client, conn) = tokio_postgres::connect(url, NoTls).await.expect("connect");
    actix_rt::spawn(async move {
        let _ = conn.await;
    });
    client
}

/// Waits for `cond` to become true, checking every 20 ms, failing after `timeout`.
pub async fn wait_for<F, Fut>(what: &str, timeout: Duration, mut cond: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let deadline = Instant::now() + timeout;
    while !cond().await {
        assert!(
            Instant::now() < deadline,
            "timed out after {timeout:?} waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// What a probe job does.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub enum Behave {
    Succeed,
    /// Fail every attempt below `until`, then succeed.
    FailUntil(i32),
    Cancel,
    /// Snooze on the first attempt, then succeed.
    SnoozeOnce(u64),
    Panic,
    SleepMs(u64),
    /// Never yield (a blocking loop) for this long.
    BlockMs(u64),
}

/// The test job: reports each start to the test through [`Events`].
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Probe {
    pub tag: String,
    pub behave: Behave,
}

impl Probe {
    pub fn new(tag: impl Into<String>) -> Self {
        Probe {
            tag: tag.into(),
            behave: Behave::Succeed,
        }
    }

    pub fn behave(tag: impl Into<String>, behave: Behave) -> Self {
        Probe {
            tag: tag.into(),
            behave,
        }
    }
}

/// A handler start, as seen by the probe.
#[derive(Debug, Clone)]
pub struct Event {
    pub id: i64,
    pub tag: String,
    pub attempt: i32,
    pub priority: i16,
    pub lane: String,
    pub at: Instant,
}

/// The channel probes report on; register with `.data(events.sender())`.
pub struct Events {
    tx: mpsc::UnboundedSender<Event>,
    rx: mpsc::UnboundedReceiver<Event>,
}

#[derive(Clone)]
pub struct EventSender(mpsc::UnboundedSender<Event>);

impl Events {
    pub fn new() -> Self {
        let (tx, rx) = mpsc::unbounded_channel();
        Events { tx, rx }
    }

    pub fn sender(&self) -> EventSender {
        EventSender(self.tx.clone())
    }

    /// The next event, failing after `timeout`.
    pub async fn next(&mut self, timeout: Duration) -> Event {
        tokio::time::timeout(timeout, self.rx.recv())
            .await
            .unwrap_or_else(|_| panic!("no job started within {timeout:?}"))
            .expect("events channel open")
    }

    /// The next `n` events.
    pub async fn take(&mut self, n: usize, timeout: Duration) -> Vec<Event> {
        let deadline = Instant::now() + timeout;
        let mut out = Vec::with_capacity(n);
        while out.len() < n {
            let left = deadline.saturating_duration_since(Instant::now());
            match tokio::time::timeout(left, self.rx.recv()).await {
                Ok(Some(e)) => out.push(e),
                _ => panic!("only {} of {n} jobs started within {timeout:?}", out.len()),
            }
        }
        out
    }

    /// Every event that arrives within `window` (bounded observation).
    pub async fn all_within(&mut self, window: Duration) -> Vec<Event> {
        let deadline = Instant::now() + window;
        let mut out = Vec::new();
        while let Ok(Some(e)) = tokio::time::timeout_at(deadline.into(), self.rx.recv()).await {
            out.push(e);
        }
        out
    }

    /// Whether an event arrives within `window` (for "must not run yet" checks, bounded).
    pub async fn none_within(&mut self, window: Duration) -> bool {
        tokio::time::timeout(window, self.rx.recv()).await.is_err()
    }
}

impl Job for Probe {
    const KIND: &'static str = "probe";
    const MAX_ATTEMPTS: i32 = 3;

    async fn run(self, ctx: JobContext) -> Result<(), JobError> {
        if let Some(starts) = ctx.data::<Starts>() {
            *starts.0.lock().unwrap().entry(ctx.id()).or_insert(0) += 1;
        }
        // Held until the handler returns (or unwinds), so the gauge counts true overlap.
        let _running = ctx.data::<Gauge>().map(|g| g.enter(ctx.lane()));
        if let Some(tx) = ctx.data::<EventSender>() {
            let _ = tx.0.send(Event {
                id: ctx.id(),
                tag: self.tag.clone(),
                attempt: ctx.attempt(),
                priority: ctx.priority(),
                lane: ctx.lane().to_string(),
                at: Instant::now(),
            });
        }
        match self.behave {
            Behave::Succeed => Ok(()),
            Behave::FailUntil(n) if ctx.attempt() < n => Err(JobError::retry(format!(
                "failing attempt {}",
                ctx.attempt()
            ))),
            Behave::FailUntil(_) => Ok(()),
            Behave::Cancel => Err(JobError::cancel("not wanted")),
            Behave::SnoozeOnce(ms) if ctx.attempt() == 1 && !snoozed(&ctx).await => {
                Err(JobError::snooze(Duration::from_millis(ms)))
            }
            Behave::SnoozeOnce(_) => Ok(()),
            Behave::Panic => panic!("probe {} panicked on purpose", self.tag),
            Behave::SleepMs(ms) => {
                tokio::time::sleep(Duration::from_millis(ms)).await;
                Ok(())
            }
            Behave::BlockMs(ms) => {
                std::thread::sleep(Duration::from_millis(ms));
                Ok(())
            }
        }
    }
}

/// Whether this job was snoozed before (its errors are empty, but run_at moved): the
/// probe keeps a per-process set instead, keyed by id and the registered events channel
/// (ids repeat across the tests' schemas, which run in parallel).
async fn snoozed(ctx: &JobContext) -> bool {
    type Seen = std::sync::Mutex<std::collections::HashSet<(usize, i64)>>;
    static SEEN: OnceLock<Seen> = OnceLock::new();
    let set = SEEN.get_or_init(Default::default);
    let scope = ctx
        .data::<EventSender>()
        .map_or(0, |tx| tx as *const EventSender as usize);
    !set.lock().unwrap().insert((scope, ctx.id()))
}

/// Counts handler starts per job id, shared by every engine it is registered with
/// (`.data(starts.clone())`), to prove no job runs twice.
#[derive(Clone, Default)]
pub struct Starts(pub Shared<std::collections::HashMap<i64, u32>>);

impl Starts {
    pub fn snapshot(&self) -> std::collections::HashMap<i64, u32> {
        self.0.lock().unwrap().clone()
    }
}

/// How many probes run at once, per lane: now and the most seen since the last reset.
#[derive(Clone, Default)]
pub struct Gauge(Shared<std::collections::HashMap<String, (u32, u32)>>);

pub struct GaugeGuard {
    gauge: Gauge,
    lane: String,
}

impl Gauge {
    fn enter(&self, lane: &str) -> GaugeGuard {
        let mut m = self.0.lock().unwrap();
        let e = m.entry(lane.to_string()).or_insert((0, 0));
        e.0 += 1;
        e.1 = e.1.max(e.0);
        GaugeGuard {
            gauge: self.clone(),
            lane: lane.to_string(),
        }
    }

    /// (running now, most at once since the last reset) for `lane`.
    pub fn get(&self, lane: &str) -> (u32, u32) {
        self.0.lock().unwrap().get(lane).copied().unwrap_or((0, 0))
    }

    /// Forgets the peak: from now on it is measured from the current count.
    pub fn reset_peak(&self, lane: &str) {
        if let Some(e) = self.0.lock().unwrap().get_mut(lane) {
            e.1 = e.0;
        }
    }
}

impl Drop for GaugeGuard {
    fn drop(&mut self) {
        if let Some(e) = self.gauge.0.lock().unwrap().get_mut(&self.lane) {
            e.0 -= 1;
        }
    }
}

/// Waits until `cond` holds for the engine's stats, returning them.
pub async fn wait_stats(
    engine: &Engine,
    what: &str,
    timeout: Duration,
    cond: impl Fn(&pglane::EngineStats) -> bool,
) -> pglane::EngineStats {
    let deadline = Instant::now() + timeout;
    loop {
        let s = engine.stats().await.unwrap();
        if cond(&s) {
            return s;
        }
        assert!(
            Instant::now() < deadline,
            "timed out after {timeout:?} waiting for {what}; last stats {s:?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Waits until the engine's listener is subscribed (NOTIFY wakes it from now on).
pub async fn wait_listening(engine: &Engine) {
    wait_stats(engine, "the listener", Duration::from_secs(10), |s| {
        s.listener.mode == pglane::ListenerMode::Notify
    })
    .await;
}

/// A job's error history (`errors` jsonb), live or finished.
pub async fn errors_of(db: &TestDb, id: i64) -> Vec<serde_json::Value> {
    let rows = db
        .query(&format!(
            "SELECT errors FROM {{schema}}.all_jobs WHERE id = {id}"
        ))
        .await;
    let v: serde_json::Value = rows[0].get(0);
    v.as_array().cloned().unwrap_or_default()
}

/// One engine statement, rendered for the test's schema as the store renders it.
pub fn render_sql(sql: &str, schema: &str) -> String {
    sql.replace("/* TEMPLATE: schema */", &format!("\"{schema}\"."))
}

pub type Shared<T> = Arc<std::sync::Mutex<T>>;

/// A command that runs this test binary again as a helper process (a job worker to
/// kill, a process to interrupt), running only the test `entry` (its path within the
/// binary, e.g. `faults::worker_process::fault_worker_process`), which acts as the
/// helper when it finds `role_var` in its environment and passes at once otherwise.
///
/// Re-executing the test binary needs nothing built besides it, so it works however
/// the tests were built and run: `cargo test`, `cargo test --all-targets`, a `--test it`
/// filter, `cargo nextest run` (whose binaries are libtest binaries too).
pub fn helper_process(entry: &str, role_var: &str, role: &str) -> std::process::Command {
    let exe = std::env::current_exe().expect("the test binary's path");
    let mut cmd = std::process::Command::new(exe);
    cmd.args([entry, "--exact", "--nocapture", "--test-threads=1"])
        .env(role_var, role);
    cmd
}

/// The path of test function `name` in module `module` (`module_path!()` there), as
/// libtest names it: without the crate's name.
pub fn test_path(module: &str, name: &str) -> String {
    let module = module.split_once("::").map_or("", |(_, rest)| rest);
    if module.is_empty() {
        name.to_string()
    } else {
        format!("{module}::{name}")
    }
}

/// Collects formatted log lines.
#[derive(Clone, Default)]
pub struct Lines(Arc<Mutex<Vec<u8>>>);

impl Lines {
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().unwrap()).into_owned()
    }
}

std::thread_local! {
    /// Where log lines of this thread go, if a test captures them.
    static CAPTURE: RefCell<Option<Lines>> = const { RefCell::new(None) };
}

/// Writes a line to the current thread's capture, or nowhere.
struct ThreadCapture;

impl Write for ThreadCapture {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        CAPTURE.with(|c| {
            if let Some(lines) = &*c.borrow() {
                lines.0.lock().unwrap().extend_from_slice(buf);
            }
        });
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Captures the log lines of this thread (where the test's engine runs its actors)
/// until the returned guard is dropped. One global subscriber for the whole test
/// binary: a thread-local one (`set_default`) lost lines when other tests running in
/// parallel had registered the same call sites first.
pub fn capture() -> (Lines, impl Drop) {
    static INSTALLED: OnceLock<()> = OnceLock::new();
    INSTALLED.get_or_init(|| {
        use tracing_subscriber::layer::SubscriberExt;
        use tracing_subscriber::Layer;
        let layer = tracing_subscriber::fmt::layer()
            .with_writer(|| ThreadCapture)
            .with_ansi(false)
            // Spans are printed when opened and closed, with their fields (the traces
            // test).
            .with_span_events(
                tracing_subscriber::fmt::format::FmtSpan::NEW
                    | tracing_subscriber::fmt::format::FmtSpan::CLOSE,
            )
            // Only what a capturing thread emits is formatted at all: the other tests
            // pay nothing for this subscriber.
            // (A dynamic filter: asked each time, never cached per call site.)
            .with_filter(tracing_subscriber::filter::dynamic_filter_fn(|meta, _| {
                *meta.level() <= tracing::Level::INFO && CAPTURE.with(|c| c.borrow().is_some())
            }));
        let subscriber = tracing_subscriber::registry().with(layer);
        let _ = tracing::subscriber::set_global_default(subscriber);
    });
    let lines = Lines::default();
    CAPTURE.with(|c| *c.borrow_mut() = Some(lines.clone()));
    struct Release;
    impl Drop for Release {
        fn drop(&mut self) {
            CAPTURE.with(|c| *c.borrow_mut() = None);
        }
    }
    (lines, Release)
}

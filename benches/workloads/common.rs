//! What every workload shares: fresh schemas, bulk filling, waiting for a drained
//! table, percentiles and JSON lines (the probe job and its recorder are in `probe`).

use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use pglane::{Engine, Enqueue, Lane};
use serde_json::Value;
use tokio_postgres::{Client, NoTls};

pub(crate) use crate::probe::{Probe, Recorder, LOW};

pub(crate) type BoxError = Box<dyn std::error::Error + Send + Sync>;
pub(crate) type BoxResult<T> = Result<T, BoxError>;

/// Jobs per COPY call when filling large backlogs (one call must fit the call timeout).
const FILL_CHUNK: u64 = 100_000;

/// Connects a plain client, its connection driven on the current runtime.
pub(crate) async fn connect(url: &str) -> BoxResult<Client> {
    let (client, conn) = tokio_postgres::connect(url, NoTls).await?;
    tokio::spawn(async move {
        if let Err(e) = conn.await {
            eprintln!("bench connection ended: {e}");
        }
    });
    Ok(client)
}

/// A freshly migrated schema, dropped by [`Schema::drop`].
pub(crate) struct Schema {
    pub(crate) name: String,
    pub(crate) url: String,
    pub(crate) client: Client,
}

impl Schema {
    pub(crate) async fn create(url: &str, tag: &str) -> BoxResult<Schema> {
        let name = format!("bench_{tag}_{}", std::process::id());
        let client = connect(url).await?;
        client
            .batch_execute(&format!("DROP SCHEMA IF EXISTS \"{name}\" CASCADE"))
            .await?;
        pglane::migrate(url, &name).await?;
        // A/B switch for what the flows' statement trigger on jobs_finished costs
        // (issue 10): same binary, runs interleaved with and without it.
        if std::env::var_os("PGLANE_BENCH_NO_FLOW_TRIGGER").is_some() {
            client
                .batch_execute(&format!(
                    "ALTER TABLE \"{name}\".jobs_finished DISABLE TRIGGER release_dependents"
                ))
                .await?;
        }
        Ok(Schema {
            name,
            url: url.to_string(),
            client,
        })
    }

    pub(crate) async fn drop(self) -> BoxResult<()> {
        self.client
            .batch_execute(&format!("DROP SCHEMA IF EXISTS \"{}\" CASCADE", self.name))
            .await?;
        Ok(())
    }

    /// Live (unfinished) jobs.
    pub(crate) async fn live(&self) -> BoxResult<i64> {
        let q = format!("SELECT count(*) FROM \"{}\".jobs", self.name);
        Ok(self.client.query_one(&q, &[]).await?.get(0))
    }

    /// Waits until a separate connection sees no unfinished job. Polls the recorder
    /// first (no database load while the engine works), then the table every 2 ms.
    pub(crate) async fn wait_drained(
        &self,
        rec: Option<(&Recorder, u64)>,
        timeout: Duration,
    ) -> BoxResult<Instant> {
        let deadline = Instant::now() + timeout;
        let mut report = Instant::now();
        if let Some((rec, n)) = rec {
            while rec.executions.load(Ordering::Acquire) < n {
                if Instant::now() > deadline {
                    return Err(format!(
                        "timed out: {} of {n} executed",
                        rec.executions.load(Ordering::Acquire)
                    )
                    .into());
                }
                if report.elapsed() > Duration::from_secs(1) {
                    report = Instant::now();
                    let done = rec.executions.load(Ordering::Acquire);
                    eprintln!("  … {done} of {n} executed");
                }
                tokio::time::sleep(Duration::from_millis(2)).await;
            }
        }
        let q = format!("SELECT NOT EXISTS (SELECT 1 FROM \"{}\".jobs)", self.name);
        let stmt = self.client.prepare(&q).await?;
        loop {
            if self.client.query_one(&stmt, &[]).await?.get::<_, bool>(0) {
                return Ok(Instant::now());
            }
            if Instant::now() > deadline {
                return Err(format!("timed out: {} jobs still live", self.live().await?).into());
            }
            if report.elapsed() > Duration::from_secs(1) {
                report = Instant::now();
                eprintln!("  … {} jobs live", self.live().await?);
            }
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
    }
}

/// An engine that claims nothing (its queue is never used) but can enqueue: for filling
/// backlogs before the measured engine starts, or from another thread.
pub(crate) async fn producer(url: &str, schema: &str) -> BoxResult<Engine> {
    Ok(Engine::builder(url)
        .schema(schema)
        .queue("bench_idle")
        .lane(Lane::new("idle").concurrency(1))
        .register::<Probe>()
        .worker_id("bench-producer")
        .start()
        .await?)
}

/// Enqueues `n` background jobs with binary COPY, in chunks that fit the call timeout.
pub(crate) async fn fill(engine: &Engine, n: u64, priority: i16, sleep_us: u32) -> BoxResult<()> {
    let mut left = n;
    while left > 0 {
        let chunk = left.min(FILL_CHUNK);
        let jobs =
            (0..chunk).map(|_| Enqueue::new(Probe { seq: LOW, sleep_us }).priority(priority));
        let inserted = engine.enqueue_copy(jobs).await?;
        if inserted != chunk {
            return Err(format!("COPY inserted {inserted} of {chunk}").into());
        }
        left -= chunk;
    }
    Ok(())
}

/// Enqueues `n` background jobs from a helper process (this binary with `--child
/// fill`), so that the measuring process's memory is the engine's alone: the allocator
/// keeps what a hundred thousand validated jobs once took.
pub(crate) fn fill_elsewhere(
    schema: &Schema,
    n: u64,
    priority: i16,
    sleep_us: u32,
) -> BoxResult<()> {
    let status = std::process::Command::new(std::env::current_exe()?)
        .args(["--child", "fill", "--schema", &schema.name])
        .args(["--database-url", &schema.url])
        .args(["--jobs", &n.to_string()])
        .args(["--priority", &priority.to_string()])
        .args(["--sleep-us", &sleep_us.to_string()])
        .status()?;
    if !status.success() {
        return Err(format!("the fill process failed: {status}").into());
    }
    Ok(())
}

/// The `--child fill` side of [`fill_elsewhere`].
pub(crate) async fn fill_child(
    url: &str,
    schema: &str,
    n: u64,
    priority: i16,
    sleep_us: u32,
) -> BoxResult<()> {
    let producer = producer(url, schema).await?;
    fill(&producer, n, priority, sleep_us).await?;
    producer.shutdown().await?;
    Ok(())
}

/// Latency summary in milliseconds (nearest-rank percentiles).
pub(crate) struct Pct {
    pub(crate) n: usize,
    pub(crate) p50: f64,
    pub(crate) p95: f64,
    pub(crate) p99: f64,
    pub(crate) max: f64,
}

pub(crate) fn percentiles(mut v: Vec<f64>) -> Pct {
    v.sort_by(f64::total_cmp);
    let at = |q: f64| {
        if v.is_empty() {
            return f64::NAN;
        }
        let rank = ((q * v.len() as f64).ceil() as usize).clamp(1, v.len());
        v[rank - 1]
    };
    Pct {
        n: v.len(),
        p50: at(0.50),
        p95: at(0.95),
        p99: at(0.99),
        max: at(1.0),
    }
}

/// Milliseconds from `from` to `to`, negative if `to` came first.
pub(crate) fn ms_between(from: Instant, to: Instant) -> f64 {
    if to >= from {
        (to - from).as_secs_f64() * 1e3
    } else {
        -((from - to).as_secs_f64() * 1e3)
    }
}

/// Rounds for display.
pub(crate) fn r(x: f64, decimals: i32) -> Value {
    if decimals == 0 && x.is_finite() {
        return Value::from(x.round() as i64);
    }
    let f = 10f64.powi(decimals);
    serde_json::json!((x * f).round() / f)
}

/// One JSON object with its keys in the given order.
pub(crate) fn line(fields: &[(&str, Value)]) -> String {
    let body: Vec<String> = fields
        .iter()
        .map(|(k, v)| format!("{}:{v}", Value::from(*k)))
        .collect();
    format!("{{{}}}", body.join(","))
}

/// This process's resident set size and its high-water mark, in MiB.
pub(crate) fn rss_mib() -> (f64, f64) {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let field = |name: &str| {
        status
            .lines()
            .find(|l| l.starts_with(name))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|kb| kb.parse::<f64>().ok())
            .map_or(f64::NAN, |kb| kb / 1024.0)
    };
    (field("VmRSS:"), field("VmHWM:"))
}

/// CPU time this process has used (user + system), from `/proc/self/stat`.
pub(crate) fn cpu_time() -> Duration {
    cpu_time_of("/proc/self/stat").unwrap_or_default()
}

/// CPU time (user + system) of the process whose `stat` file is `path`.
pub(crate) fn cpu_time_of(path: &str) -> Option<Duration> {
    let stat = std::fs::read_to_string(path).ok()?;
    // Fields after the command name (which may contain spaces) start at state (3rd).
    let rest = stat.rsplit_once(')').map_or("", |(_, r)| r);
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks = |i: usize| {
        fields
            .get(i)
            .and_then(|v| v.parse::<u64>().ok())
            .unwrap_or(0)
    };
    // utime and stime are fields 14 and 15, i.e. 11 and 12 after the state; the clock
    // tick is 100 Hz on every Linux this runs on.
    Some(Duration::from_millis((ticks(11) + ticks(12)) * 10))
}

//! w1: one engine drains a bulk-enqueued backlog of no-op jobs (with the scale
//! variants: a large backlog, a large history).

use std::sync::Arc;
use std::time::{Duration, Instant};

use pglane::{Engine, Lane};
use serde_json::Value;

use crate::common::{self, line, ms_between, r, rss_mib, BoxResult, Probe, Recorder, Schema};
use crate::evidence::{self, Pace};

pub(crate) struct DrainOptions {
    pub(crate) jobs: u64,
    pub(crate) concurrency: u32,
    /// Completed rows put in `jobs_finished` before the drain.
    pub(crate) history: u64,
    /// Make that history older than the retention, so pruning runs during the drain.
    pub(crate) history_expired: bool,
    /// Sample `pg_stat_activity` during the drain (`--sample-activity`).
    pub(crate) sample_activity: bool,
    /// The lane's prefetch (`--prefetch`).
    pub(crate) prefetch: u32,
    /// The engine's `completed_retention`, if not its default (`--completed-retention-s`).
    pub(crate) completed_retention: Option<Duration>,
}

pub(crate) async fn w1(url: &str, o: &DrainOptions) -> BoxResult<Vec<String>> {
    let schema = Schema::create(url, "w1").await?;
    let result = run(&schema, o).await;
    schema.drop().await?;
    result
}

async fn run(schema: &Schema, o: &DrainOptions) -> BoxResult<Vec<String>> {
    if o.history > 0 {
        eprintln!("w1: writing {} rows of history", o.history);
        prefill_history(schema, o.history, o.history_expired).await?;
    }
    eprintln!("w1: enqueueing {} jobs", o.jobs);
    common::fill_elsewhere(schema, o.jobs, 100, 0)?;

    let rec = Recorder::new(0, false);
    // Statistics as autovacuum leaves them within a minute of a bulk enqueue (every
    // job available, none running), so a run does not depend on whether autoanalyze
    // happened to come first. Statistics like these once made every outcome batch
    // quadratic (see outcomes.sql).
    schema
        .client
        .batch_execute(&format!("ANALYZE \"{}\".jobs", schema.name))
        .await?;
    let before = evidence::counters(&schema.client, &schema.name).await?;
    let sampler = if o.sample_activity {
        Some(evidence::sample(&schema.url, &schema.name).await?)
    } else {
        None
    };
    eprintln!("w1: draining with concurrency {}", o.concurrency);
    let cpu0 = common::cpu_time();
    let t0 = Instant::now();
    let mut builder = Engine::builder(&schema.url)
        .schema(&schema.name)
        .lane(
            Lane::new("default")
                .concurrency(o.concurrency)
                .prefetch(o.prefetch),
        )
        .register::<Probe>()
        .data(rec.clone());
    if let Some(d) = o.completed_retention {
        builder = builder.completed_retention(d);
    }
    let engine = builder.start().await?;
    let rss = sample_rss(Duration::from_millis(20));
    let mut pace = Pace::new();
    let done = wait_paced(schema, &rec, o.jobs, &mut pace).await;
    let rss_peak = rss.stop();
    let activity = match sampler {
        Some(s) => s.finish().await,
        None => Vec::new(),
    };
    let engine_stats = engine.stats().await?;
    let backend_cpu = evidence::backend_cpu(&schema.client).await?;
    engine.shutdown().await?;
    let t1 = done?;
    let cpu = (common::cpu_time() - cpu0).as_secs_f64();
    let after = evidence::counters(&schema.client, &schema.name).await?;
    // Closing the engine's connections makes their backends report their row counts.
    drop(engine);
    let rows = evidence::counters_settled(&schema.client, &schema.name, before, o.jobs).await?;
    let wall = (t1 - t0).as_secs_f64();
    let (_, hwm) = rss_mib();
    eprintln!("w1: done in {wall:.3} s");
    Ok(vec![line(
        &[
            ("workload", Value::from("w1")),
            ("jobs", o.jobs.into()),
            ("concurrency", o.concurrency.into()),
            ("prefetch", o.prefetch.into()),
            ("wall_s", r(wall, 3)),
            ("jobs_per_s", r(o.jobs as f64 / wall, 0)),
            // Engine start (pools, listener, schema check) until the first job ran: part
            // of wall_s, and a large share of it for small backlogs.
            (
                "first_job_ms",
                r(rec.first_start().map_or(f64::NAN, |t| ms_between(t0, t)), 1),
            ),
            (
                "executions",
                rec.executions
                    .load(std::sync::atomic::Ordering::Acquire)
                    .into(),
            ),
            // The engine process's CPU (all threads) per job, to compare with the
            // database's share of the two cores.
            ("engine_cpu_us_per_job", r(cpu * 1e6 / o.jobs as f64, 1)),
            // The engine's PostgreSQL backends' CPU per job (from /proc; null when the
            // server runs elsewhere).
            (
                "db_backend_cpu_us_per_job",
                backend_cpu.map_or(Value::Null, |t| r(t.as_secs_f64() * 1e6 / o.jobs as f64, 1)),
            ),
            ("history", o.history.into()),
            ("history_expired", o.history_expired.into()),
            (
                "completed_retention_s",
                o.completed_retention
                    .map_or(Value::Null, |d| d.as_secs_f64().into()),
            ),
            ("rss_peak_mib", r(rss_peak, 1)),
            ("process_hwm_mib", r(hwm, 1)),
        ]
        .into_iter()
        .chain(evidence::claim_time_fields(&engine_stats))
        .chain(evidence::counter_fields(before, after, rows, o.jobs))
        .chain(activity)
        .chain(pace.fields())
        .collect::<Vec<_>>(),
    )])
}

/// Waits until every job ran and a separate connection sees none left, noting the
/// pace once a second.
async fn wait_paced(
    schema: &Schema,
    rec: &Recorder,
    n: u64,
    pace: &mut Pace,
) -> BoxResult<Instant> {
    let deadline = Instant::now() + Duration::from_secs(600);
    let mut report = Instant::now();
    loop {
        let done = rec.executions.load(std::sync::atomic::Ordering::Acquire);
        pace.note(done);
        if done >= n {
            break;
        }
        if Instant::now() > deadline {
            return Err(format!("timed out: {done} of {n} executed").into());
        }
        if report.elapsed() > Duration::from_secs(1) {
            report = Instant::now();
            eprintln!("  … {done} of {n} executed");
        }
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    schema.wait_drained(None, Duration::from_secs(600)).await
}

/// Completed rows as the engine would have left them, then vacuumed: a history that
/// accumulated over time, not a fresh bulk load waiting for autovacuum.
async fn prefill_history(schema: &Schema, n: u64, expired: bool) -> BoxResult<()> {
    let age = if expired { "2 days" } else { "1 minute" };
    let sql = format!(
        "INSERT INTO \"{s}\".jobs_finished
             (id, kind, queue, priority, args, state, attempt, max_attempts, run_at,
              rescues, errors, created_at, started_at, finished_at)
         SELECT -g, 'bench_probe', 'default', 100, '{{\"seq\":0}}', 'completed', 1, 20,
                now(), 0, '[]', now(), now(), now() - interval '{age}'
         FROM generate_series(1, {n}) AS g",
        s = schema.name
    );
    schema.client.batch_execute(&sql).await?;
    schema
        .client
        .batch_execute(&format!("VACUUM ANALYZE \"{}\".jobs_finished", schema.name))
        .await?;
    Ok(())
}

/// Samples this process's resident set size until stopped; answers the peak in MiB.
struct RssSampler {
    stop: Arc<std::sync::atomic::AtomicBool>,
    thread: std::thread::JoinHandle<f64>,
}

fn sample_rss(every: Duration) -> RssSampler {
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let flag = stop.clone();
    let thread = std::thread::spawn(move || {
        let mut peak: f64 = 0.0;
        while !flag.load(std::sync::atomic::Ordering::Acquire) {
            peak = peak.max(rss_mib().0);
            std::thread::sleep(every);
        }
        peak.max(rss_mib().0)
    });
    RssSampler { stop, thread }
}

impl RssSampler {
    fn stop(self) -> f64 {
        self.stop.store(true, std::sync::atomic::Ordering::Release);
        self.thread.join().unwrap_or(f64::NAN)
    }
}

//! Latency workloads: w2 pickup latency of an idle engine, w4 urgent jobs under a
//! backlog, w6 urgent jobs while a continuous stream saturates the engine.
//!
//! Latency is always handler start minus the moment the enqueue call returned (after
//! its commit), both read from the monotonic clock of this process.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use pglane::{Engine, Enqueue, Lane};

use crate::common::{
    self, fill, line, ms_between, percentiles, r, BoxResult, Probe, Recorder, Schema,
};

/// Urgent jobs run in `high` (0..=9), background ones in `low` (10..).
const HIGH_PRIORITY: i16 = 0;
const LOW_PRIORITY: i16 = 100;

fn lanes(low_slots: u32, high_slots: u32) -> [Lane; 2] {
    [
        Lane::new("high").priorities(0..=9).concurrency(high_slots),
        Lane::new("low").priorities(10..).concurrency(low_slots),
    ]
}

async fn start(schema: &Schema, rec: &Arc<Recorder>, lanes: [Lane; 2]) -> BoxResult<Engine> {
    let [a, b] = lanes;
    Ok(Engine::builder(&schema.url)
        .schema(&schema.name)
        .lane(a)
        .lane(b)
        .register::<Probe>()
        .data(rec.clone())
        .start()
        .await?)
}

/// Waits for the listener to be up, so the idle engine is really idle and listening.
async fn settle(engine: &Engine) -> BoxResult<()> {
    let deadline = Instant::now() + Duration::from_secs(10);
    while engine.stats().await?.listener.mode != pglane::ListenerMode::Notify {
        if Instant::now() > deadline {
            return Err("listener did not come up".into());
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    Ok(())
}

pub(crate) async fn w2(url: &str) -> BoxResult<Vec<String>> {
    let schema = Schema::create(url, "w2").await?;
    let result = w2_run(&schema).await;
    schema.drop().await?;
    result
}

async fn w2_run(schema: &Schema) -> BoxResult<Vec<String>> {
    const SAMPLES: usize = 300;
    let mut out = Vec::new();
    // Two paths: the engine's own enqueue (which also wakes its lanes directly), and
    // the SQL function from another connection (the wake-up travels by NOTIFY).
    for path in ["engine", "sql"] {
        let rec = Recorder::new(SAMPLES, false);
        let engine = Engine::builder(&schema.url)
            .schema(&schema.name)
            .lane(Lane::new("default").concurrency(4))
            .register::<Probe>()
            .data(rec.clone())
            .start()
            .await?;
        settle(&engine).await?;
        eprintln!("w2: {SAMPLES} jobs, 20 ms apart, via {path}");
        let other = common::connect(&schema.url).await?;
        let sql = format!(
            "SELECT \"{}\".enqueue('bench_probe', jsonb_build_object('seq', $1::int))",
            schema.name
        );
        let stmt = other.prepare(&sql).await?;
        let mut sent = Vec::with_capacity(SAMPLES);
        let mut pace = Pace::every(Duration::from_millis(20));
        for seq in 0..SAMPLES {
            pace.wait().await;
            if path == "engine" {
                engine
                    .enqueue(Enqueue::new(Probe {
                        seq: seq as u32,
                        sleep_us: 0,
                    }))
                    .await?;
            } else {
                other.query_one(&stmt, &[&(seq as i32)]).await?;
            }
            sent.push(Instant::now());
        }
        rec.wait_started(SAMPLES, Duration::from_secs(10)).await?;
        engine.shutdown().await?;
        let lat: Vec<f64> = (0..SAMPLES)
            .filter_map(|i| rec.started_at(i).map(|t| ms_between(sent[i], t)))
            .collect();
        let early = lat.iter().filter(|l| **l < 0.0).count();
        let p = percentiles(lat);
        out.push(line(&[
            ("workload", "w2".into()),
            ("path", path.into()),
            ("samples", p.n.into()),
            ("p50_ms", r(p.p50, 3)),
            ("p95_ms", r(p.p95, 3)),
            ("p99_ms", r(p.p99, 3)),
            ("max_ms", r(p.max, 3)),
            ("started_before_enqueue_returned", early.into()),
        ]));
    }
    Ok(out)
}

pub(crate) async fn w4(url: &str, prefetch: u32) -> BoxResult<Vec<String>> {
    let schema = Schema::create(url, "w4").await?;
    let result = w4_run(&schema, prefetch).await;
    schema.drop().await?;
    result
}

async fn w4_run(schema: &Schema, prefetch: u32) -> BoxResult<Vec<String>> {
    const LOW_JOBS: u64 = 20_000;
    const HIGH_JOBS: usize = 200;
    const LOW_SLOTS: u32 = 8;
    const INTERVAL_MS: u64 = 10;
    eprintln!("w4: enqueueing {LOW_JOBS} low jobs sleeping 1 ms");
    common::fill_elsewhere(schema, LOW_JOBS, LOW_PRIORITY, 1000)?;

    let rec = Recorder::new(HIGH_JOBS, false);
    let t0 = Instant::now();
    let [high, low] = lanes(LOW_SLOTS, 4);
    let engine = start(schema, &rec, [high, low.prefetch(prefetch)]).await?;
    tokio::time::sleep(Duration::from_secs(1)).await;
    eprintln!("w4: {HIGH_JOBS} high jobs, {INTERVAL_MS} ms apart");
    let mut sent = Vec::with_capacity(HIGH_JOBS);
    let mut pace = Pace::every(Duration::from_millis(INTERVAL_MS));
    for seq in 0..HIGH_JOBS {
        pace.wait().await;
        let job = Probe {
            seq: seq as u32,
            sleep_us: 0,
        };
        engine
            .enqueue(Enqueue::new(job).priority(HIGH_PRIORITY))
            .await?;
        sent.push(Instant::now());
    }
    rec.wait_started(HIGH_JOBS, Duration::from_secs(10)).await?;
    let drained = schema
        .wait_drained(
            Some((&rec, LOW_JOBS + HIGH_JOBS as u64)),
            Duration::from_secs(120),
        )
        .await;
    engine.shutdown().await?;
    drained?;
    let low_wall = (rec.last_low_end() - t0).as_secs_f64();
    let last_high = (0..HIGH_JOBS)
        .max_by_key(|i| rec.started_at(*i))
        .unwrap_or(0);
    let lat: Vec<f64> = (0..HIGH_JOBS)
        .filter_map(|i| rec.started_at(i).map(|t| ms_between(sent[i], t)))
        .collect();
    let p = percentiles(lat);
    let sleep = rec.mean_sleep_ms();
    Ok(vec![line(&[
        ("workload", "w4".into()),
        ("low_prefetch", prefetch.into()),
        ("high_p50_ms", r(p.p50, 3)),
        ("high_p99_ms", r(p.p99, 3)),
        ("high_max_ms", r(p.max, 3)),
        ("low_jobs_per_s", r(LOW_JOBS as f64 / low_wall, 0)),
        (
            "low_left_when_last_high_started",
            (LOW_JOBS - rec.low_done_at_start(last_high)).into(),
        ),
        // The handlers' real sleep (timer granularity makes "1 ms" longer), and the
        // lane's possible rate given that sleep: the honest denominator.
        ("low_sleep_mean_ms", r(sleep, 3)),
        (
            "low_possible_jobs_per_s",
            r(f64::from(LOW_SLOTS) * 1000.0 / sleep, 0),
        ),
    ])])
}

pub(crate) struct MixedOptions {
    pub(crate) low_concurrency: u32,
    /// The urgent lane's `target_wait`, if any.
    pub(crate) target_wait: Option<Duration>,
    /// Milliseconds between urgent jobs.
    pub(crate) interval_ms: u64,
}

pub(crate) async fn w6(url: &str, o: &MixedOptions) -> BoxResult<Vec<String>> {
    let schema = Schema::create(url, "w6").await?;
    let result = w6_run(&schema, o).await;
    schema.drop().await?;
    result
}

async fn w6_run(schema: &Schema, o: &MixedOptions) -> BoxResult<Vec<String>> {
    const HIGH_JOBS: usize = 500;
    const BACKLOG: u64 = 30_000;
    let interval_ms = o.interval_ms;
    eprintln!("w6: enqueueing a backlog of {BACKLOG} low jobs");
    common::fill_elsewhere(schema, BACKLOG, LOW_PRIORITY, 0)?;

    let rec = Recorder::new(HIGH_JOBS, false);
    let [mut high, low] = lanes(o.low_concurrency, 4);
    if let Some(d) = o.target_wait {
        high = high.target_wait(d);
    }
    let engine = start(schema, &rec, [high, low]).await?;
    // The stream is fed from another thread with its own engine handle, like a
    // separate producer service: its COPYs must not run on the measured actix thread.
    let feeder = Feeder::spawn(schema, rec.clone(), BACKLOG);
    tokio::time::sleep(Duration::from_millis(500)).await;
    eprintln!("w6: {HIGH_JOBS} high jobs, {interval_ms} ms apart, over a saturated low lane");
    let low_before = rec.low_done.load(Ordering::Acquire);
    let t0 = Instant::now();
    let mut sent = Vec::with_capacity(HIGH_JOBS);
    let mut pace = Pace::every(Duration::from_millis(interval_ms));
    for seq in 0..HIGH_JOBS {
        pace.wait().await;
        let job = Probe {
            seq: seq as u32,
            sleep_us: 0,
        };
        engine
            .enqueue(Enqueue::new(job).priority(HIGH_PRIORITY))
            .await?;
        sent.push(Instant::now());
    }
    let stats = engine.stats().await?;
    let window = t0.elapsed().as_secs_f64();
    let low_done = rec.low_done.load(Ordering::Acquire) - low_before;
    // Joining the feeder may block this thread for one COPY: only after every
    // measured job has started.
    rec.wait_started(HIGH_JOBS, Duration::from_secs(10)).await?;
    let (fed, min_backlog) = feeder.stop()?;
    engine.shutdown().await?;
    let lat: Vec<f64> = (0..HIGH_JOBS)
        .filter_map(|i| rec.started_at(i).map(|t| ms_between(sent[i], t)))
        .collect();
    let p = percentiles(lat);
    Ok(vec![line(&[
        ("workload", "w6".into()),
        ("low_jobs_per_s", r(low_done as f64 / window, 0)),
        ("high_p50_ms", r(p.p50, 3)),
        ("high_p99_ms", r(p.p99, 3)),
        ("high_max_ms", r(p.max, 3)),
        ("low_concurrency", o.low_concurrency.into()),
        (
            "target_wait_ms",
            o.target_wait
                .map_or(serde_json::Value::Null, |d| r(d.as_secs_f64() * 1e3, 2)),
        ),
        ("high_interval_ms", interval_ms.into()),
        (
            "engine_wait_p99_ms",
            stats.lanes[0]
                .wait_p99
                .map_or(serde_json::Value::Null, |d| r(d.as_secs_f64() * 1e3, 3)),
        ),
        ("low_throttle_at_end", r(stats.lanes[1].throttle, 3)),
        ("window_s", r(window, 2)),
        ("low_fed", fed.into()),
        ("low_backlog_min", min_backlog.into()),
    ])])
}

/// Keeps the low backlog above a floor from its own thread and actix system.
struct Feeder {
    stop: Arc<std::sync::atomic::AtomicBool>,
    thread: std::thread::JoinHandle<BoxResult<(u64, i64)>>,
}

impl Feeder {
    fn spawn(schema: &Schema, rec: Arc<Recorder>, prefilled: u64) -> Feeder {
        const FLOOR: i64 = 20_000;
        const BATCH: u64 = 10_000;
        let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let flag = stop.clone();
        let (url, name) = (schema.url.clone(), schema.name.clone());
        let thread = std::thread::spawn(move || {
            actix::System::new().block_on(async move {
                let producer = common::producer(&url, &name).await?;
                let (mut fed, mut min_backlog) = (prefilled, i64::MAX);
                while !flag.load(Ordering::Acquire) {
                    let backlog = fed as i64 - rec.low_done.load(Ordering::Acquire) as i64;
                    min_backlog = min_backlog.min(backlog);
                    if backlog < FLOOR {
                        fill(&producer, BATCH, LOW_PRIORITY, 0).await?;
                        fed += BATCH;
                    } else {
                        tokio::time::sleep(Duration::from_millis(10)).await;
                    }
                }
                producer.shutdown().await?;
                Ok((fed - prefilled, min_backlog))
            })
        });
        Feeder { stop, thread }
    }

    /// Stops feeding; answers the jobs fed and the smallest backlog seen.
    fn stop(self) -> BoxResult<(u64, i64)> {
        self.stop.store(true, Ordering::Release);
        self.thread
            .join()
            .map_err(|_| "the feeder thread panicked")?
    }
}

/// Arrivals on a fixed schedule (start + n × interval), so a slow enqueue or a late
/// timer does not stretch the spacing of every later arrival.
struct Pace {
    next: Instant,
    every: Duration,
}

impl Pace {
    fn every(every: Duration) -> Pace {
        Pace {
            next: Instant::now(),
            every,
        }
    }

    async fn wait(&mut self) {
        tokio::time::sleep_until(self.next.into()).await;
        self.next += self.every;
    }
}

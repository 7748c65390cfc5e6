//! pglane's workload benchmarks, as defined in BENCHMARKS.md.
//!
//! ```text
//! cargo bench --bench workloads -- <workload> [--jobs N] [--concurrency N] [--database-url URL]
//! cargo bench --bench workloads -- w1 --jobs 1000000        # scale: a large backlog
//! cargo bench --bench workloads -- w1 --history 1000000     # scale: a large history
//! cargo bench --bench workloads -- all                      # every workload in turn
//! cargo bench --bench workloads -- w1 --metrics             # with a metrics recorder
//! ```
//!
//! Each workload runs in a fresh schema (dropped at the end), prints one JSON line per
//! result on stdout and its progress on stderr. `RUST_LOG` sets the engine's log level
//! (default `warn`).

mod bulk;
mod ceiling;
mod common;
mod drain;
mod evidence;
mod latency;
mod multi;
mod probe;

use clap::{Parser, ValueEnum};

use common::BoxResult;

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Workload {
    /// Drain a bulk-enqueued backlog with one engine.
    W1,
    /// Pickup latency of an idle engine.
    W2,
    /// Bulk enqueue.
    W3,
    /// Urgent jobs under a backlog of 1 ms jobs.
    W4,
    /// Several engine processes drain one schema.
    W5,
    /// Urgent jobs while a continuous stream saturates the engine.
    W6,
    /// The database alone: plain SQL claim+complete cycles.
    Ceiling,
    /// Every workload above, in turn, at its default size.
    All,
}

/// pglane workload benchmarks (BENCHMARKS.md).
#[derive(Debug, Parser)]
#[command(name = "workloads")]
struct Args {
    /// The workload to run.
    workload: Option<Workload>,
    /// Jobs to enqueue. Defaults: w1 20,000; w3 and w5 100,000; ceiling 100,000.
    #[arg(long)]
    jobs: Option<u64>,
    /// Slots of the (low) lane. Defaults: 16 for w1 and w5 (per process); 1,000 for
    /// w6 (with the urgent lane's latency target; its old configuration was 16 slots).
    #[arg(long)]
    concurrency: Option<u32>,
    /// The database. Without an `sslmode` the engines connect in plain text
    /// (`sslmode=disable` is added), like the harness's own connections and the peers'
    /// benchmarks: pglane's default, `prefer`, negotiates TLS with a server that has
    /// `ssl=on`, which costs pickup latency (README, Performance).
    #[arg(
        long,
        env = "DATABASE_URL",
        default_value = pglane::devdb::DEFAULT_DATABASE_URL
    )]
    database_url: String,
    /// w1: completed jobs written to the history table before the drain.
    #[arg(long, default_value_t = 0)]
    history: u64,
    /// w1: make that history older than the retention, so pruning runs during the drain.
    #[arg(long)]
    history_expired: bool,
    /// w1: sample `pg_stat_activity` and vacuum progress every 5 ms during the drain
    /// (slow claims, claims waiting on a lock, vacuum phases). Off by default: the
    /// sampling query costs the database CPU that the drain would otherwise use.
    #[arg(long)]
    sample_activity: bool,
    /// Install a Prometheus recorder for the `metrics` facade (as an application with
    /// metrics would), and render it once at the end, to measure what metrics cost.
    #[arg(long)]
    metrics: bool,
    /// w1: how long completed jobs are kept, in seconds (the engine's default is a
    /// day; 0 deletes them without a copy in `jobs_finished`).
    #[arg(long)]
    completed_retention_s: Option<f64>,
    /// w1 and w4: jobs the (low) lane may hold ready beyond its slots
    /// (`Lane::prefetch`). Defaults: w1 0; w4 32 (the configuration the README
    /// recommends for it; `--prefetch 0` runs the old one).
    #[arg(long)]
    prefetch: Option<u32>,
    /// w6: the urgent lane's `target_wait` in ms (default 5, with 96 low slots: the
    /// configuration the README recommends for w6; 0 runs without a target, e.g.
    /// `--target-wait-ms 0 --concurrency 1000` the old configuration).
    #[arg(long, default_value_t = 5.0)]
    target_wait_ms: f64,
    /// w6: ms between urgent jobs (default 20; 2 is the 10× trickle).
    #[arg(long, default_value_t = 20)]
    high_interval_ms: u64,
    /// w5: engine processes.
    #[arg(long, default_value_t = 4)]
    processes: usize,
    /// ceiling: jobs per claim.
    #[arg(long, default_value_t = 500)]
    batch: i64,
    /// ceiling: connections cycling in parallel.
    #[arg(long, default_value_t = 2)]
    connections: usize,
    /// Run against a private PostgreSQL server started for this run (default settings
    /// but for `max_connections = 300`; `fsync` on), so that WAL and row counters
    /// count this run alone, not other clients of a shared server.
    #[arg(long)]
    private_server: bool,
    /// Passed by `cargo bench` to every harness-less bench; ignored.
    #[arg(long, hide = true)]
    bench: bool,
    /// Internal: run as a helper process (`w5` worker, or `fill` for w1's backlog).
    #[arg(long, hide = true)]
    child: Option<String>,
    /// Internal: the priority of the jobs a `fill` child enqueues.
    #[arg(long, hide = true, default_value_t = 100)]
    priority: i16,
    /// Internal: how long the jobs a `fill` child enqueues sleep, in µs.
    #[arg(long, hide = true, default_value_t = 0)]
    sleep_us: u32,
    /// Internal: the schema a child works in.
    #[arg(long, hide = true)]
    schema: Option<String>,
}

const W1_JOBS: u64 = 20_000;
const BIG_JOBS: u64 = 100_000;
const CONCURRENCY: u32 = 16;
/// w4's low lane prefetch by default: enough ready jobs to cover a claim round trip of
/// its 8 slots of ~1.2 ms jobs even when the machine is loaded.
const W4_PREFETCH: u32 = 32;
/// w6's low lane slots by default: bounded, so PostgreSQL keeps CPU for urgent claims on
/// the 2 cores it shares with the engine (its urgent lane holds a 5 ms latency target
/// as a guard). Measured: 96 slots drain ~48,000 jobs/s with urgent p99 ~4.8 ms; 1,000
/// slots with a 3 ms target sawed between its floor and full share (30-44k, p99 5-5.7).
const W6_CONCURRENCY: u32 = 96;

fn main() {
    let args = Args::parse();
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "warn".into()),
        )
        .with_writer(std::io::stderr)
        .init();
    let recorder = args
        .metrics
        .then(|| pglane::prometheus::install().expect("recorder"));
    let result = actix::System::new().block_on(dispatch(args));
    if let Some(handle) = recorder {
        let text = handle.render();
        let series = text.lines().filter(|l| !l.starts_with('#')).count();
        eprintln!("metrics: {series} series rendered");
    }
    if let Err(e) = result {
        eprintln!("error: {e}");
        std::process::exit(1);
    }
}

/// `url` with `sslmode=disable` added unless it names an `sslmode` itself.
fn plain_unless_said(url: &str) -> String {
    if url.contains("sslmode") {
        return url.to_string();
    }
    if url.contains("://") {
        let sep = if url.contains('?') { '&' } else { '?' };
        format!("{url}{sep}sslmode=disable")
    } else {
        format!("{url} sslmode=disable")
    }
}

async fn dispatch(args: Args) -> BoxResult<()> {
    let mut url = plain_unless_said(&args.database_url);
    // Kept alive (and stopped when dropped) until every workload is done.
    let _private = if args.private_server && args.child.is_none() {
        let pg = pglane::devdb::TempPostgres::init(&["fsync = on", "max_connections = 300"])?;
        pg.start_server()?;
        url = pg.url();
        eprintln!("workloads: private server at {url}");
        Some(pg)
    } else {
        None
    };
    if let Some(role) = &args.child {
        let schema = args.schema.as_deref().ok_or("--child needs --schema")?;
        return match role.as_str() {
            "w5" => multi::child(&url, schema, args.concurrency.unwrap_or(CONCURRENCY)).await,
            "fill" => {
                let n = args.jobs.unwrap_or(W1_JOBS);
                common::fill_child(&url, schema, n, args.priority, args.sleep_us).await
            }
            other => Err(format!("unknown child role `{other}`").into()),
        };
    }
    let Some(workload) = args.workload else {
        eprintln!(
            "workloads: no workload given (plain `cargo bench` runs none); use \
             `cargo bench --bench workloads -- <w1|w2|w3|w4|w5|w6|ceiling|all>`"
        );
        return Ok(());
    };
    let list = if workload == Workload::All {
        vec![
            Workload::Ceiling,
            Workload::W1,
            Workload::W2,
            Workload::W3,
            Workload::W4,
            Workload::W5,
            Workload::W6,
        ]
    } else {
        vec![workload]
    };
    // In `all` mode every workload runs at its default size.
    let jobs = |default: u64| match workload {
        Workload::All => default,
        _ => args.jobs.unwrap_or(default),
    };
    let concurrency = args.concurrency.unwrap_or(CONCURRENCY);
    for w in list {
        let lines = match w {
            Workload::W1 => {
                let o = drain::DrainOptions {
                    jobs: jobs(W1_JOBS),
                    concurrency,
                    history: args.history,
                    history_expired: args.history_expired,
                    sample_activity: args.sample_activity,
                    prefetch: args.prefetch.unwrap_or(0),
                    completed_retention: args
                        .completed_retention_s
                        .map(std::time::Duration::from_secs_f64),
                };
                drain::w1(&url, &o).await?
            }
            Workload::W2 => latency::w2(&url).await?,
            Workload::W3 => bulk::w3(&url, jobs(BIG_JOBS)).await?,
            Workload::W4 => latency::w4(&url, args.prefetch.unwrap_or(W4_PREFETCH)).await?,
            Workload::W5 => {
                let o = multi::ManyOptions {
                    jobs: jobs(BIG_JOBS),
                    processes: args.processes,
                    concurrency,
                };
                multi::w5(&url, &o).await?
            }
            Workload::W6 => {
                let o = latency::MixedOptions {
                    low_concurrency: args.concurrency.unwrap_or(W6_CONCURRENCY),
                    target_wait: (args.target_wait_ms > 0.0)
                        .then(|| std::time::Duration::from_secs_f64(args.target_wait_ms / 1e3)),
                    interval_ms: args.high_interval_ms,
                };
                latency::w6(&url, &o).await?
            }
            Workload::Ceiling => {
                let o = ceiling::CeilingOptions {
                    jobs: jobs(BIG_JOBS),
                    batch: args.batch,
                    connections: args.connections,
                };
                ceiling::ceiling(&url, &o).await?
            }
            Workload::All => unreachable!("expanded above"),
        };
        for l in lines {
            println!("{l}");
        }
    }
    Ok(())
}

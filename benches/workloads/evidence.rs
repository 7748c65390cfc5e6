//! Evidence for the drain's JSON line, so a stall cannot hide in a median: what the
//! database did during the run (checkpoints, vacuums of the job table, dead rows left,
//! WAL written), how fast the drain went second by second, and how long claims took as
//! seen from `pg_stat_activity` and `pg_stat_progress_vacuum` (sampled every 5 ms on a
//! connection of its own).

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::Value;
use tokio_postgres::Client;

use crate::common::{connect, r, BoxResult};

/// Server counters read before and after a run.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Counters {
    checkpoints: i64,
    /// VACUUMs of the job table: manual (the engine's maintenance) and autovacuum.
    vacuums: i64,
    autovacuums: i64,
    dead_rows: i64,
    wal_bytes: f64,
    /// Rows inserted, updated (of which HOT) and deleted in `jobs` and `jobs_finished`.
    inserted: i64,
    updated: i64,
    hot_updated: i64,
    deleted: i64,
}

/// Reads the counters for `schema`'s job table (statistics lag commits by up to a
/// second; `pg_stat_clear_snapshot` makes each read fresh).
pub(crate) async fn counters(client: &Client, schema: &str) -> BoxResult<Counters> {
    client
        .batch_execute("SELECT pg_stat_clear_snapshot()")
        .await?;
    let row = client
        .query_one(
            &format!(
                "SELECT (SELECT (checkpoints_timed + checkpoints_req)::bigint FROM pg_stat_bgwriter),
                        coalesce(vacuum_count, 0), coalesce(autovacuum_count, 0),
                        coalesce(n_dead_tup, 0),
                        pg_wal_lsn_diff(pg_current_wal_lsn(), '0/0')::float8,
                        w.ins, w.upd, w.hot, w.del
                 FROM pg_stat_user_tables,
                      (SELECT sum(n_tup_ins)::bigint AS ins, sum(n_tup_upd)::bigint AS upd,
                              sum(n_tup_hot_upd)::bigint AS hot, sum(n_tup_del)::bigint AS del
                       FROM pg_stat_user_tables
                       WHERE relid IN ('\"{schema}\".jobs'::regclass,
                                       '\"{schema}\".jobs_finished'::regclass)) AS w
                 WHERE relid = '\"{schema}\".jobs'::regclass"
            ),
            &[],
        )
        .await?;
    Ok(Counters {
        checkpoints: row.get(0),
        vacuums: row.get(1),
        autovacuums: row.get(2),
        dead_rows: row.get(3),
        wal_bytes: row.get(4),
        inserted: row.get(5),
        updated: row.get(6),
        hot_updated: row.get(7),
        deleted: row.get(8),
    })
}

/// Reads the counters until the row counts show every job's claim (a backend reports
/// them when it exits, or when idle, up to 10 s later), for at most 12 s.
pub(crate) async fn counters_settled(
    client: &Client,
    schema: &str,
    before: Counters,
    jobs: u64,
) -> BoxResult<Counters> {
    let deadline = std::time::Instant::now() + Duration::from_secs(12);
    loop {
        let now = counters(client, schema).await?;
        if now.updated - before.updated >= jobs as i64 || std::time::Instant::now() > deadline {
            return Ok(now);
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// The JSON fields comparing two readings, for `jobs` jobs: WAL and vacuums at the end
/// of the drain (`b`), rows once the engine's backends reported them (`rows`).
pub(crate) fn counter_fields(
    a: Counters,
    b: Counters,
    rows: Counters,
    jobs: u64,
) -> Vec<(&'static str, Value)> {
    let per_job = |x: i64| r(x as f64 / jobs.max(1) as f64, 2);
    let (a, b, wal_end) = (a, rows, b);
    let updated = b.updated - a.updated;
    vec![
        // Row versions written per job in the two job tables (the enqueue's insert is
        // before the first reading, so a drain's rows are claim, outcome and prune).
        (
            "rows_written_per_job",
            per_job(b.inserted - a.inserted + updated + b.deleted - a.deleted),
        ),
        ("rows_inserted_per_job", per_job(b.inserted - a.inserted)),
        ("rows_updated_per_job", per_job(updated)),
        (
            "hot_update_share",
            r(
                (b.hot_updated - a.hot_updated) as f64 / updated.max(1) as f64,
                2,
            ),
        ),
        ("rows_deleted_per_job", per_job(b.deleted - a.deleted)),
        ("checkpoints", (wal_end.checkpoints - a.checkpoints).into()),
        ("vacuums_manual", (wal_end.vacuums - a.vacuums).into()),
        ("vacuums_auto", (wal_end.autovacuums - a.autovacuums).into()),
        ("dead_rows_end", wal_end.dead_rows.into()),
        (
            "wal_bytes_per_job",
            r((wal_end.wal_bytes - a.wal_bytes) / jobs.max(1) as f64, 0),
        ),
    ]
}

/// Samples `pg_stat_activity` for the engine's claims and `pg_stat_progress_vacuum` for
/// the job table until stopped.
pub(crate) struct Sampler {
    stop: Arc<AtomicBool>,
    seen: Arc<Mutex<Seen>>,
    samples: Arc<AtomicU64>,
    task: tokio::task::JoinHandle<()>,
}

#[derive(Default)]
struct Seen {
    /// Longest duration observed per claim (backend pid, query start in µs).
    claims: HashMap<(i32, i64), f64>,
    /// Samples in which a VACUUM of the job table was in each phase.
    vacuum_phases: HashMap<String, u64>,
    /// Samples in which a claim was waiting on a lock.
    claims_waiting_on_lock: u64,
}

/// Starts sampling `schema` on its own connection. Claims are told apart by their
/// statement's first line (the query text shown is cut at 1 kB) and by the engine's
/// connection name, which ends in this process's id.
pub(crate) async fn sample(url: &str, schema: &str) -> BoxResult<Sampler> {
    let pid = std::process::id();
    let client = connect(url).await?;
    let stop = Arc::new(AtomicBool::new(false));
    let seen = Arc::new(Mutex::new(Seen::default()));
    let samples = Arc::new(AtomicU64::new(0));
    let query = client
        .prepare(&format!(
            "SELECT 0 AS what, pid, (extract(epoch FROM query_start) * 1e6)::bigint,
                    extract(epoch FROM clock_timestamp() - query_start)::float8 * 1000,
                    coalesce(wait_event_type, '')
             FROM pg_stat_activity
             WHERE state = 'active' AND query LIKE '-- Claims up to%'
               AND application_name LIKE 'pglane engine %:{pid}'
             UNION ALL
             SELECT 1, pid, 0, 0, phase
             FROM pg_stat_progress_vacuum
             WHERE relid = '\"{schema}\".jobs'::regclass"
        ))
        .await?;
    let (flag, store, count) = (stop.clone(), seen.clone(), samples.clone());
    let task = tokio::spawn(async move {
        while !flag.load(Ordering::Acquire) {
            if let Ok(rows) = client.query(&query, &[]).await {
                count.fetch_add(1, Ordering::Relaxed);
                let mut s = store.lock().unwrap_or_else(|p| p.into_inner());
                for row in rows {
                    let what: i32 = row.get(0);
                    if what == 0 {
                        let key = (row.get::<_, i32>(1), row.get::<_, i64>(2));
                        let ms: f64 = row.get(3);
                        let e = s.claims.entry(key).or_insert(0.0);
                        *e = e.max(ms);
                        if row.get::<_, String>(4) == "Lock" {
                            s.claims_waiting_on_lock += 1;
                        }
                    } else {
                        *s.vacuum_phases.entry(row.get(4)).or_default() += 1;
                    }
                }
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    });
    Ok(Sampler {
        stop,
        seen,
        samples,
        task,
    })
}

impl Sampler {
    /// Stops sampling; answers the JSON fields. Claims shorter than the sampling
    /// interval are mostly not seen, so these describe the slow tail, not the median.
    pub(crate) async fn finish(self) -> Vec<(&'static str, Value)> {
        self.stop.store(true, Ordering::Release);
        let _ = self.task.await;
        let s = self.seen.lock().unwrap_or_else(|p| p.into_inner());
        let mut claims: Vec<f64> = s.claims.values().copied().collect();
        claims.sort_by(f64::total_cmp);
        let over = |ms: f64| claims.iter().filter(|c| **c >= ms).count();
        let mut phases: Vec<(&String, &u64)> = s.vacuum_phases.iter().collect();
        phases.sort();
        let phases: serde_json::Map<String, Value> = phases
            .into_iter()
            .map(|(k, v)| (k.clone(), (*v).into()))
            .collect();
        vec![
            (
                "activity_samples",
                self.samples.load(Ordering::Relaxed).into(),
            ),
            ("claims_seen_active", claims.len().into()),
            ("claims_over_10ms", over(10.0).into()),
            ("claims_over_100ms", over(100.0).into()),
            (
                "claim_seen_max_ms",
                r(claims.last().copied().unwrap_or(0.0), 1),
            ),
            ("claim_lock_wait_samples", s.claims_waiting_on_lock.into()),
            ("vacuum_phase_samples", Value::Object(phases)),
        ]
    }
}

/// Jobs done per second of the drain: the slowest second and how many seconds ran
/// below a quarter of the run's average (a stall shows here, not in the average).
pub(crate) struct Pace {
    every_second: Vec<u64>,
    last: u64,
    at: Instant,
}

impl Pace {
    pub(crate) fn new() -> Self {
        Pace {
            every_second: Vec::new(),
            last: 0,
            at: Instant::now(),
        }
    }

    /// Notes the running total; records a rate once a second has passed.
    pub(crate) fn note(&mut self, done: u64) {
        if self.at.elapsed() >= Duration::from_secs(1) {
            let secs = self.at.elapsed().as_secs_f64();
            self.every_second
                .push(((done - self.last) as f64 / secs) as u64);
            self.last = done;
            self.at = Instant::now();
        }
    }

    pub(crate) fn fields(&self) -> Vec<(&'static str, Value)> {
        let n = self.every_second.len();
        if n == 0 {
            return vec![];
        }
        let mean = self.every_second.iter().sum::<u64>() as f64 / n as f64;
        let slow = self
            .every_second
            .iter()
            .filter(|r| (**r as f64) < mean / 4.0)
            .count();
        vec![
            (
                "slowest_second_jobs",
                (*self.every_second.iter().min().unwrap_or(&0)).into(),
            ),
            ("seconds_below_quarter_of_mean", slow.into()),
            ("per_second", self.every_second.clone().into()),
        ]
    }
}

/// Claim and outcome-batch times measured by the engine itself (every statement, not a
/// sample; percentiles at about 19% resolution, max exact).
pub(crate) fn claim_time_fields(stats: &pglane::EngineStats) -> Vec<(&'static str, Value)> {
    let ms = |d: Duration| r(d.as_secs_f64() * 1e3, 2);
    let (c, o) = (stats.claim_times, stats.outcome_times);
    vec![
        ("claims", c.count.into()),
        ("claim_p50_ms", ms(c.p50)),
        ("claim_p99_ms", ms(c.p99)),
        ("claim_max_ms", ms(c.max)),
        ("outcome_batches", o.count.into()),
        ("outcome_p50_ms", ms(o.p50)),
        ("outcome_p99_ms", ms(o.p99)),
        ("outcome_max_ms", ms(o.max)),
    ]
}

/// CPU time (user + system) used so far by this process's engine backends: every
/// connection whose `application_name` is pglane's and ends in this process's id, read
/// from `/proc/<pid>/stat` (the server must run on this host; `None` if none is
/// readable). Read before the engine shuts down, while its connections are open.
pub(crate) async fn backend_cpu(client: &Client) -> BoxResult<Option<Duration>> {
    let rows = client
        .query(
            "SELECT pid FROM pg_stat_activity WHERE application_name LIKE 'pglane %:' || $1::text",
            &[&std::process::id().to_string()],
        )
        .await?;
    let mut total = None;
    for row in rows {
        let pid: i32 = row.get(0);
        if let Some(t) = crate::common::cpu_time_of(&format!("/proc/{pid}/stat")) {
            total = Some(total.unwrap_or(Duration::ZERO) + t);
        }
    }
    Ok(total)
}

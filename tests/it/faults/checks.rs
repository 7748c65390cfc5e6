//! The final checks: nothing lost, nothing completed twice, no attempt charged, how
//! soon work came back after a fault, and what a standby held when its primary died.

use std::collections::{HashMap, HashSet};
use std::time::{Duration, Instant, SystemTime};

use pglane::devdb::TempPostgres;
use tokio_postgres::Client;

use super::connect_retry;
use crate::support::wait_for;

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
        assert!(
            ran >= 1,
            "job {id} completed without running here (rescues {rescues}): {errors}; ran here: {:?}",
            {
                let mut ids: Vec<_> = executions.keys().copied().collect();
                ids.sort_unstable();
                ids
            }
        );
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

/// What the standby holds once it has replayed all the WAL it received from the stopped
/// primary: exactly the state the new primary starts from when promoted.
pub struct Replayed {
    /// Live jobs and their state.
    jobs: HashMap<i64, String>,
    finished: HashSet<i64>,
}

impl Replayed {
    /// Whether a run of job `id` on the old primary never reached the standby: the job
    /// is available there (its claim was lost) or absent (its enqueue was lost too).
    pub fn lost(&self, id: i64) -> bool {
        !self.finished.contains(&id) && self.jobs.get(&id).is_none_or(|s| s == "available")
    }
}

/// Reads the job tables of `standby` (its primary stopped, not yet promoted) once it
/// has replayed everything it received: its WAL receiver has exited (flushing what it
/// had on the way out), and replay has caught up with what was flushed.
pub async fn replayed_at_stop(standby: &TempPostgres, schema: &str) -> Replayed {
    let c = connect_retry(&standby.url(), Duration::from_secs(5)).await;
    wait_for(
        "the standby to replay all it received",
        Duration::from_secs(10),
        || {
            let c = &c;
            async move {
                c.query_one(
                    "SELECT NOT EXISTS (SELECT 1 FROM pg_stat_wal_receiver) \
                     AND coalesce(pg_last_wal_replay_lsn() >= pg_last_wal_receive_lsn(), false)",
                    &[],
                )
                .await
                .map(|r| r.get::<_, bool>(0))
                .unwrap_or(false)
            }
        },
    )
    .await;
    let jobs = c
        .query(&format!("SELECT id, state FROM \"{schema}\".jobs"), &[])
        .await
        .unwrap()
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect();
    let finished = c
        .query(&format!("SELECT id FROM \"{schema}\".jobs_finished"), &[])
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    Replayed { jobs, finished }
}

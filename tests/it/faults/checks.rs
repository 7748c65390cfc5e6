//! The final checks: nothing lost, nothing completed twice, no attempt charged, and how
//! soon work came back after a fault.

use std::collections::HashMap;
use std::time::{Duration, Instant, SystemTime};

use tokio_postgres::Client;

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

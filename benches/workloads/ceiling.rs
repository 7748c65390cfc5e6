//! ceiling: the database alone. Plain SQL claim-then-complete cycles on the engine's
//! own tables, with the engine's statement shapes (MATERIALIZED CTE + SKIP LOCKED claim
//! that sets a lease, then DELETE … RETURNING into the history table), no actors and
//! no handlers: what PostgreSQL can do here, to compare w1 against.

use std::time::Instant;

use tokio_postgres::Client;

use crate::common::{self, line, r, BoxResult, Schema};

pub(crate) struct CeilingOptions {
    pub(crate) jobs: u64,
    pub(crate) batch: i64,
    pub(crate) connections: usize,
}

pub(crate) async fn ceiling(url: &str, o: &CeilingOptions) -> BoxResult<Vec<String>> {
    let schema = Schema::create(url, "ceiling").await?;
    let result = run(&schema, o).await;
    schema.drop().await?;
    result
}

fn claim_sql(s: &str) -> String {
    format!(
        "WITH picked AS MATERIALIZED (
             SELECT id FROM \"{s}\".jobs
             WHERE state = 'available'
               AND priority BETWEEN 0 AND 32767
               AND run_at <= now()
               AND queue = 'default'
               AND kind = ANY($1::text[])
             ORDER BY priority, run_at, id
             LIMIT $2::bigint
             FOR UPDATE SKIP LOCKED
         )
         UPDATE \"{s}\".jobs AS j
         SET state = 'running', attempt = j.attempt + 1, lease_token = $3::bigint,
             lease_until = now() + interval '30 seconds', worker_id = 'ceiling',
             started_at = now()
         FROM picked
         WHERE j.id = picked.id
         RETURNING j.id"
    )
}

fn complete_sql(s: &str) -> String {
    format!(
        "WITH finished AS (
             DELETE FROM \"{s}\".jobs AS j
             WHERE j.id = ANY($1::bigint[]) AND j.lease_token = $2::bigint
               AND j.state = 'running'
             RETURNING j.*
         )
         INSERT INTO \"{s}\".jobs_finished
             (id, kind, queue, priority, args, state, attempt, max_attempts, run_at,
              timeout_ms, unique_key, worker_id, rescues, errors, created_at, started_at,
              finished_at)
         SELECT id, kind, queue, priority, args, 'completed', attempt, max_attempts, run_at,
                timeout_ms, unique_key, worker_id, rescues, errors, created_at, started_at,
                now()
         FROM finished"
    )
}

async fn run(schema: &Schema, o: &CeilingOptions) -> BoxResult<Vec<String>> {
    eprintln!("ceiling: enqueueing {} jobs", o.jobs);
    common::fill_elsewhere(schema, o.jobs, 100, 0)?;

    let mut clients = Vec::new();
    for _ in 0..o.connections {
        clients.push(common::connect(&schema.url).await?);
    }
    eprintln!("ceiling: {} connections, batch {}", o.connections, o.batch);
    let t0 = Instant::now();
    let mut tasks = Vec::new();
    for (i, client) in clients.into_iter().enumerate() {
        let name = schema.name.clone();
        let batch = o.batch;
        tasks.push(tokio::task::spawn_local(async move {
            cycle(&client, &name, batch, i as i64 + 1).await
        }));
    }
    let mut done = 0;
    for t in tasks {
        done += t.await??;
    }
    let wall = t0.elapsed().as_secs_f64();
    if done != o.jobs || schema.live().await? != 0 {
        return Err(format!("ceiling: completed {done} of {}", o.jobs).into());
    }
    Ok(vec![line(&[
        ("workload", "ceiling".into()),
        ("jobs", o.jobs.into()),
        ("batch", o.batch.into()),
        ("connections", o.connections.into()),
        ("wall_s", r(wall, 3)),
        ("jobs_per_s", r(o.jobs as f64 / wall, 0)),
    ])])
}

/// Claims and completes batches until a claim comes back empty; answers the jobs done.
async fn cycle(client: &Client, schema: &str, batch: i64, token: i64) -> BoxResult<u64> {
    let claim = client.prepare(&claim_sql(schema)).await?;
    let complete = client.prepare(&complete_sql(schema)).await?;
    let kinds = vec!["bench_probe".to_string()];
    let mut done = 0;
    loop {
        let rows = client.query(&claim, &[&kinds, &batch, &token]).await?;
        if rows.is_empty() {
            return Ok(done);
        }
        let ids: Vec<i64> = rows.iter().map(|r| r.get(0)).collect();
        done += client.execute(&complete, &[&ids, &token]).await?;
    }
}

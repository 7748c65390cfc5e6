//! w3: bulk enqueue with the fastest API (binary COPY), and the unnest insert beside it.

use std::time::Instant;

use pglane::Enqueue;

use crate::common::{self, line, r, BoxResult, Probe, Schema, LOW};

pub(crate) async fn w3(url: &str, jobs: u64) -> BoxResult<Vec<String>> {
    let schema = Schema::create(url, "w3").await?;
    let result = run(&schema, jobs).await;
    schema.drop().await?;
    result
}

async fn run(schema: &Schema, jobs: u64) -> BoxResult<Vec<String>> {
    let engine = common::producer(&schema.url, &schema.name).await?;
    let batch = || -> Vec<Enqueue<Probe>> {
        (0..jobs)
            .map(|_| {
                Enqueue::new(Probe {
                    seq: LOW,
                    sleep_us: 0,
                })
            })
            .collect()
    };
    let mut out = Vec::new();
    for api in ["enqueue_copy", "enqueue_many"] {
        schema
            .client
            .batch_execute(&format!("TRUNCATE \"{}\".jobs", schema.name))
            .await?;
        let input = batch();
        eprintln!("w3: {jobs} jobs with {api}");
        // Timed from the call (validation and serialization included) to its return,
        // after the commit.
        let t0 = Instant::now();
        let inserted = match api {
            "enqueue_copy" => engine.enqueue_copy(input).await?,
            _ => engine.enqueue_many(input).await?.len() as u64,
        };
        let wall = t0.elapsed().as_secs_f64();
        let live = schema.live().await?;
        if inserted != jobs || live != jobs as i64 {
            return Err(format!("{api}: inserted {inserted}, {live} live, of {jobs}").into());
        }
        out.push(line(&[
            ("workload", "w3".into()),
            ("api", api.into()),
            ("jobs", jobs.into()),
            ("wall_s", r(wall, 3)),
            ("jobs_per_s", r(jobs as f64 / wall, 0)),
        ]));
    }
    engine.shutdown().await?;
    Ok(out)
}

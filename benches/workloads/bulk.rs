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
    for skip in [true, false] {
        out.push(singles_into_backlog(schema, skip).await?);
    }
    Ok(out)
}

/// Single-job enqueues (4 callers, 2,000 each) into a lane that is draining a backlog,
/// with the NOTIFY skipped (the default) or sent: what `skip_notify_when_backlogged`
/// saves on the enqueue path.
async fn singles_into_backlog(schema: &Schema, skip: bool) -> BoxResult<String> {
    const CALLERS: usize = 4;
    const EACH: usize = 2_000;
    schema
        .client
        .batch_execute(&format!("TRUNCATE \"{}\".jobs", schema.name))
        .await?;
    let producer = common::producer(&schema.url, &schema.name).await?;
    common::fill(&producer, 200_000, 100, 0).await?;
    producer.shutdown().await?;
    let engine = pglane::Engine::builder(&schema.url)
        .schema(&schema.name)
        .lane(pglane::Lane::new("low").concurrency(16))
        .register::<Probe>()
        .data(crate::probe::Recorder::new(0, false))
        .skip_notify_when_backlogged(skip)
        .start()
        .await?;
    // Let the lane fill its slots and learn it has a backlog.
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    eprintln!(
        "w3: {} single enqueues into a backlog, notify skipped: {skip}",
        CALLERS * EACH
    );
    let t0 = Instant::now();
    let tasks: Vec<_> = (0..CALLERS)
        .map(|_| {
            let engine = engine.clone();
            actix_rt::spawn(async move {
                for _ in 0..EACH {
                    engine
                        .enqueue(
                            Enqueue::new(Probe {
                                seq: LOW,
                                sleep_us: 0,
                            })
                            .priority(100),
                        )
                        .await?;
                }
                Ok::<_, pglane::Error>(())
            })
        })
        .collect();
    for t in tasks {
        t.await??;
    }
    let wall = t0.elapsed().as_secs_f64();
    engine.shutdown().await?;
    Ok(line(&[
        ("workload", "w3".into()),
        ("api", "enqueue_single_into_backlog".into()),
        ("notify_skipped", skip.into()),
        ("jobs", ((CALLERS * EACH) as u64).into()),
        ("wall_s", r(wall, 3)),
        ("jobs_per_s", r((CALLERS * EACH) as f64 / wall, 0)),
    ]))
}

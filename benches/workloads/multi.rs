//! w5: several engine *processes* drain one schema. The children are this bench binary
//! started with the hidden `--child w5` flag; each reports the ids it executed, so
//! duplicates are counted exactly without adding a write per job.

use std::collections::HashSet;
use std::io::{BufRead, BufReader, Write};
use std::process::{Child, ChildStdout, Command, Stdio};
use std::time::{Duration, Instant};

use pglane::{Engine, Lane};
use serde::{Deserialize, Serialize};

use crate::common::{self, line, r, BoxResult, Probe, Recorder, Schema};

/// What a child prints when told to stop.
#[derive(Serialize, Deserialize)]
struct ChildReport {
    executions: u64,
    ids: Vec<i64>,
}

pub(crate) struct ManyOptions {
    pub(crate) jobs: u64,
    pub(crate) processes: usize,
    pub(crate) concurrency: u32,
}

pub(crate) async fn w5(url: &str, o: &ManyOptions) -> BoxResult<Vec<String>> {
    let schema = Schema::create(url, "w5").await?;
    let result = run(&schema, o).await;
    schema.drop().await?;
    result
}

/// A child process, killed if the parent gives up on it.
struct Worker {
    child: Child,
    out: Option<BufReader<ChildStdout>>,
}

impl Drop for Worker {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

impl Worker {
    /// Reads one line from the child's stdout without blocking the actix thread.
    async fn read_line(&mut self) -> BoxResult<String> {
        let mut out = self.out.take().ok_or("child stdout already in use")?;
        let (out, text) = tokio::task::spawn_blocking(move || {
            let mut s = String::new();
            let n = out.read_line(&mut s);
            (out, n.map(|_| s))
        })
        .await?;
        self.out = Some(out);
        let text = text?;
        if text.is_empty() {
            return Err("a w5 child exited early (see its stderr above)".into());
        }
        Ok(text)
    }
}

async fn run(schema: &Schema, o: &ManyOptions) -> BoxResult<Vec<String>> {
    let exe = std::env::current_exe()?;
    let mut workers = Vec::new();
    for _ in 0..o.processes {
        let child = Command::new(&exe)
            .args(["--child", "w5", "--schema", &schema.name])
            .args(["--database-url", &schema.url])
            .args(["--concurrency", &o.concurrency.to_string()])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()?;
        let mut w = Worker { child, out: None };
        w.out = w.child.stdout.take().map(BufReader::new);
        workers.push(w);
    }
    for w in &mut workers {
        let ready = w.read_line().await?;
        if ready.trim() != "ready" {
            return Err(format!("unexpected child line: {ready}").into());
        }
    }
    eprintln!(
        "w5: {} processes ready; enqueueing {} jobs",
        o.processes, o.jobs
    );
    let producer = common::producer(&schema.url, &schema.name).await?;
    // One COPY: the jobs appear together at its commit, which starts the clock.
    producer
        .enqueue_copy((0..o.jobs).map(|_| {
            pglane::Enqueue::new(Probe {
                seq: common::LOW,
                sleep_us: 0,
            })
        }))
        .await?;
    let t0 = Instant::now();
    let drained = schema.wait_drained(None, Duration::from_secs(600)).await;
    producer.shutdown().await?;
    let t1 = drained?;
    let wall = (t1 - t0).as_secs_f64();

    let mut executions = 0;
    let mut per_process = Vec::new();
    let mut seen = HashSet::new();
    for w in &mut workers {
        if let Some(stdin) = w.child.stdin.as_mut() {
            stdin.write_all(b"stop\n")?;
            stdin.flush()?;
        }
        let report: ChildReport = serde_json::from_str(&w.read_line().await?)?;
        executions += report.executions;
        per_process.push(report.executions);
        seen.extend(report.ids);
    }
    let completions: i64 = schema
        .client
        .query_one(
            &format!(
                "SELECT count(*) FROM \"{}\".jobs_finished WHERE state = 'completed'",
                schema.name
            ),
            &[],
        )
        .await?
        .get(0);
    Ok(vec![line(&[
        ("workload", "w5".into()),
        ("processes", o.processes.into()),
        ("jobs", o.jobs.into()),
        ("concurrency", o.concurrency.into()),
        ("wall_s", r(wall, 3)),
        ("jobs_per_s", r(o.jobs as f64 / wall, 0)),
        ("executions", executions.into()),
        ("completions", completions.into()),
        ("duplicates", (executions - seen.len() as u64).into()),
        ("per_process", per_process.into()),
    ])])
}

/// The child side: run an engine until told to stop on stdin, then report.
pub(crate) async fn child(url: &str, schema: &str, concurrency: u32) -> BoxResult<()> {
    let rec = Recorder::new(0, true);
    let engine = Engine::builder(url)
        .schema(schema)
        .lane(Lane::new("default").concurrency(concurrency))
        .register::<Probe>()
        .data(rec.clone())
        .worker_id(format!("bench-w5-{}", std::process::id()))
        .start()
        .await?;
    let deadline = Instant::now() + Duration::from_secs(10);
    while engine.stats().await?.listener.mode != pglane::ListenerMode::Notify {
        if Instant::now() > deadline {
            return Err("listener did not come up".into());
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    say("ready")?;
    let (tx, rx) = tokio::sync::oneshot::channel();
    std::thread::spawn(move || {
        let mut s = String::new();
        let _ = std::io::stdin().read_line(&mut s);
        let _ = tx.send(());
    });
    let _ = rx.await;
    engine.shutdown().await?;
    let report = ChildReport {
        executions: rec.executions.load(std::sync::atomic::Ordering::Acquire),
        ids: rec.take_ids(),
    };
    say(&serde_json::to_string(&report)?)
}

fn say(text: &str) -> BoxResult<()> {
    let mut out = std::io::stdout().lock();
    writeln!(out, "{text}")?;
    out.flush()?;
    Ok(())
}

//! Worker processes (this test binary run again as a worker: see `worker_process.rs`)
//! and the ledger they write every execution to.

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Write};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use tokio_postgres::Client;

use super::worker_process::{self, READY, WORKER_ROLE};
use crate::support::helper_process;

/// Creates the ledger the worker processes write every execution to.
pub async fn create_ledger(client: &Client, schema: &str) {
    client
        .batch_execute(&format!(
            "CREATE TABLE \"{schema}\".ledger (
                job_id      bigint      NOT NULL,
                attempt     integer     NOT NULL,
                lease_token bigint      NOT NULL,
                process     text        NOT NULL,
                started_at  timestamptz NOT NULL DEFAULT clock_timestamp(),
                finished_at timestamptz
            )"
        ))
        .await
        .expect("create ledger");
}

/// One ledger row.
#[derive(Debug, Clone)]
pub struct LedgerRow {
    pub job_id: i64,
    pub attempt: i32,
    pub token: i64,
    pub process: String,
    pub finished: bool,
}

pub async fn ledger(client: &Client, schema: &str, where_: &str) -> Vec<LedgerRow> {
    client
        .query(
            &format!(
                "SELECT job_id, attempt, lease_token, process, finished_at IS NOT NULL \
                 FROM \"{schema}\".ledger WHERE {where_} ORDER BY started_at"
            ),
            &[],
        )
        .await
        .expect("ledger")
        .iter()
        .map(|r| LedgerRow {
            job_id: r.get(0),
            attempt: r.get(1),
            token: r.get(2),
            process: r.get(3),
            finished: r.get(4),
        })
        .collect()
}

/// Executions per job id, from the ledger.
pub async fn ledger_executions(client: &Client, schema: &str) -> HashMap<i64, u32> {
    client
        .query(
            &format!("SELECT job_id, count(*) FROM \"{schema}\".ledger GROUP BY job_id"),
            &[],
        )
        .await
        .expect("ledger counts")
        .iter()
        .map(|r| (r.get(0), r.get::<_, i64>(1) as u32))
        .collect()
}

/// How to start a worker process (handed to it as JSON).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct WorkerSpec {
    pub url: String,
    pub schema: String,
    pub name: String,
    pub lease_ms: u64,
    pub poll_ms: u64,
    pub concurrency: u32,
    /// `normal`, `sleep:MS`, `cancellable:MS`, `fail:MS` or `poison-abort`.
    pub mode: String,
    pub max_rescues: i32,
}

/// A running worker process. Killed (SIGKILL) on drop; its log is printed if the
/// test is failing.
pub struct Worker {
    pub spec: WorkerSpec,
    child: Child,
    stdin: Option<ChildStdin>,
    log: Arc<Mutex<Vec<String>>>,
    ready: std::sync::mpsc::Receiver<()>,
}

impl Worker {
    /// Starts a worker and waits until it says `ready` (listening).
    pub async fn start(spec: &WorkerSpec) -> Worker {
        let mut w = Self::spawn(spec);
        w.wait_ready(Duration::from_secs(30)).await;
        w
    }

    /// Starts a worker without waiting for it.
    pub fn spawn(spec: &WorkerSpec) -> Worker {
        let spec_json = serde_json::to_string(spec).expect("a worker spec");
        let mut child = helper_process(&worker_process::entry(), WORKER_ROLE, &spec_json)
            .env("RUST_LOG", "pglane=debug")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn a worker process");
        let log = Arc::new(Mutex::new(Vec::new()));
        let (ready_tx, ready) = std::sync::mpsc::channel();
        let stdout = child.stdout.take().expect("stdout");
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                // libtest may print on the same line ("test … ready").
                if line.contains(READY) {
                    let _ = ready_tx.send(());
                }
            }
        });
        let stderr = child.stderr.take().expect("stderr");
        let log2 = log.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                log2.lock().unwrap().push(line);
            }
        });
        Worker {
            spec: spec.clone(),
            stdin: child.stdin.take(),
            child,
            log,
            ready,
        }
    }

    pub async fn wait_ready(&mut self, timeout: Duration) {
        let deadline = Instant::now() + timeout;
        loop {
            match self.ready.try_recv() {
                Ok(()) => return,
                Err(std::sync::mpsc::TryRecvError::Disconnected) => {
                    self.dump();
                    panic!("worker {} exited before it was ready", self.spec.name)
                }
                Err(std::sync::mpsc::TryRecvError::Empty) => {}
            }
            if Instant::now() > deadline {
                self.dump();
                panic!("worker {} not ready within {timeout:?}", self.spec.name);
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// SIGKILL, and reap.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Sends a signal by name (`STOP`, `CONT`).
    pub fn signal(&self, sig: &str) {
        let ok = Command::new("kill")
            .args([format!("-{sig}"), self.pid().to_string()])
            .status()
            .expect("kill")
            .success();
        assert!(ok, "kill -{sig} {}", self.pid());
    }

    /// Whether the process has exited (reaping it if so).
    pub fn exited(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(Some(_)))
    }

    /// Closes stdin: the worker shuts down gracefully and exits.
    pub async fn finish(mut self, timeout: Duration) {
        drop(self.stdin.take());
        let deadline = Instant::now() + timeout;
        while !self.exited() {
            if Instant::now() > deadline {
                self.dump();
                panic!("worker {} did not exit within {timeout:?}", self.spec.name);
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Waits until a log line contains `needle`.
    pub async fn wait_log(&self, needle: &str, timeout: Duration) {
        let deadline = Instant::now() + timeout;
        while !self.log.lock().unwrap().iter().any(|l| l.contains(needle)) {
            if Instant::now() > deadline {
                self.dump();
                panic!("worker {} never logged {needle:?}", self.spec.name);
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    pub fn log_lines(&self) -> Vec<String> {
        self.log.lock().unwrap().clone()
    }

    pub fn dump(&self) {
        let log = self.log.lock().unwrap();
        eprintln!("---- last lines of worker {} ----", self.spec.name);
        for l in log
            .iter()
            .rev()
            .take(40)
            .collect::<Vec<_>>()
            .into_iter()
            .rev()
        {
            eprintln!("{l}");
        }
    }
}

impl Drop for Worker {
    fn drop(&mut self) {
        if std::thread::panicking() {
            self.dump();
        }
        if let Some(mut stdin) = self.stdin.take() {
            let _ = stdin.flush();
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

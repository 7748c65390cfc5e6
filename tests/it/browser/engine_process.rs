//! The second engine process of the browser tests (this test binary run again with
//! [`ROLE`] set), and the jobs both engines run. It runs lanes `urgent` (0–9) and `bulk`
//! (10 and up), prints [`READY`] once its first heartbeat is recorded, and shuts down
//! when its stdin closes.

use std::io::{BufRead, BufReader};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use pglane::{Engine, Job, JobContext, JobError, Lane};
use serde::{Deserialize, Serialize};

/// The environment variable that makes the entry test an engine process: `url schema`.
pub const ROLE: &str = "PGLANE_BROWSER_ENGINE";

/// What the process prints once it runs.
pub const READY: &str = "pglane browser engine ready";

/// A short piece of work.
#[derive(Serialize, Deserialize)]
pub struct Work {}

impl Job for Work {
    const KIND: &'static str = "browser_work";

    async fn run(self, _ctx: JobContext) -> Result<(), JobError> {
        tokio::time::sleep(Duration::from_millis(10)).await;
        Ok(())
    }
}

/// Whether [`Flaky`] jobs succeed (registered as engine data).
#[derive(Clone, Default)]
pub struct Healthy(pub Arc<AtomicBool>);

/// Fails until the test makes the engine healthy.
#[derive(Serialize, Deserialize)]
pub struct Flaky {}

impl Job for Flaky {
    const KIND: &'static str = "flaky";

    async fn run(self, ctx: JobContext) -> Result<(), JobError> {
        match ctx.data::<Healthy>() {
            Some(h) if h.0.load(Ordering::SeqCst) => Ok(()),
            _ => Err(JobError::retry("flaky: the mail server is not healthy")),
        }
    }
}

/// Not a test: the engine process's `main`. Passes at once in a normal test run.
#[test]
fn browser_engine_process() {
    let Ok(spec) = std::env::var(ROLE) else {
        return;
    };
    let (url, schema) = spec.split_once(' ').expect("`url schema`");
    actix::System::new().block_on(async move {
        let engine = Engine::builder(url)
            .schema(schema)
            .worker_id(format!("second-process-{}", std::process::id()))
            .lane(Lane::new("urgent").priorities(0..=9).concurrency(2))
            .lane(Lane::new("bulk").priorities(10..).concurrency(2))
            .register::<Work>()
            .poll_interval(Duration::from_millis(200))
            .heartbeat_interval(Duration::from_millis(200))
            .start()
            .await
            .expect("engine start");
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        std::thread::spawn(move || {
            for _ in std::io::stdin().lock().lines().map_while(Result::ok) {}
            let _ = tx.send(());
        });
        println!("{READY}");
        let _ = rx.await;
        let _ = engine.shutdown_within(Duration::from_secs(5)).await;
    });
}

/// A running engine process; stopped (stdin closed, then killed) on drop.
pub struct EngineProcess {
    child: Child,
    stdin: Option<ChildStdin>,
}

impl EngineProcess {
    pub fn start(url: &str, schema: &str) -> EngineProcess {
        let entry = crate::support::test_path(module_path!(), "browser_engine_process");
        let mut cmd: Command =
            crate::support::helper_process(&entry, ROLE, &format!("{url} {schema}"));
        let mut child = cmd
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("start the engine process");
        let stdout = child.stdout.take().unwrap();
        let mut lines = BufReader::new(stdout).lines();
        loop {
            match lines.next() {
                Some(Ok(l)) if l.contains(READY) => break,
                Some(Ok(_)) => continue,
                _ => panic!("the engine process ended before it was ready"),
            }
        }
        // Keep reading what it prints, so it never blocks on (or breaks) a full pipe.
        std::thread::spawn(move || lines.map_while(Result::ok).for_each(drop));
        let stdin = child.stdin.take();
        EngineProcess { child, stdin }
    }
}

impl Drop for EngineProcess {
    fn drop(&mut self) {
        drop(self.stdin.take());
        for _ in 0..100 {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

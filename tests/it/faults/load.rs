//! Load for in-process engines: the [`Work`] job with its [`Tally`] of executions, and
//! a [`Feeder`] that keeps enqueueing through outages.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use pglane::{Job, JobContext, JobError};
use serde::{Deserialize, Serialize};
use tokio_postgres::{Client, NoTls};

/// The in-process fault job: sleeps `sleep_ms`, recording its start and end in the
/// engine's [`Tally`].
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Work {
    #[serde(default)]
    pub sleep_ms: u64,
}

/// One execution of a job, as its handler saw it.
#[derive(Debug, Clone)]
pub struct Run {
    pub id: i64,
    pub attempt: i32,
    pub token: i64,
    pub started: Instant,
    pub finished: Option<Instant>,
}

/// Every execution of every [`Work`] job of one test.
#[derive(Clone, Default)]
pub struct Tally(Arc<Mutex<Vec<Run>>>);

impl Tally {
    pub fn runs(&self) -> Vec<Run> {
        self.0.lock().unwrap().clone()
    }

    /// Executions per job id.
    pub fn executions(&self) -> HashMap<i64, u32> {
        let mut m = HashMap::new();
        for r in self.0.lock().unwrap().iter() {
            *m.entry(r.id).or_insert(0) += 1;
        }
        m
    }

    /// The first start of job `id`, if it started.
    pub fn started(&self, id: i64) -> Option<Instant> {
        self.0
            .lock()
            .unwrap()
            .iter()
            .find(|r| r.id == id)
            .map(|r| r.started)
    }

    /// How many runs are in their handler now.
    pub fn in_flight(&self) -> usize {
        self.0
            .lock()
            .unwrap()
            .iter()
            .filter(|r| r.finished.is_none())
            .count()
    }
}

impl Job for Work {
    const KIND: &'static str = "work";

    async fn run(self, ctx: JobContext) -> Result<(), JobError> {
        let tally = ctx.data::<Tally>().expect("a Tally is registered").clone();
        tally.0.lock().unwrap().push(Run {
            id: ctx.id(),
            attempt: ctx.attempt(),
            token: ctx.lease_token(),
            started: Instant::now(),
            finished: None,
        });
        tokio::time::sleep(Duration::from_millis(self.sleep_ms)).await;
        let mut runs = tally.0.lock().unwrap();
        if let Some(r) = runs
            .iter_mut()
            .find(|r| r.id == ctx.id() && r.token == ctx.lease_token())
        {
            r.finished = Some(Instant::now());
        }
        Ok(())
    }
}

// ---------------------------------------------------------------------------------------
// A steady enqueue stream

/// Enqueues `batch` jobs of `kind` with `args` every `every` through the schema's SQL
/// function, on its own connection (reconnecting through outages), and records the ids
/// the database acknowledged. A call whose answer was lost may still have inserted
/// jobs: the final checks therefore look at every job in the schema, not only these.
pub struct Feeder {
    stop: Arc<AtomicBool>,
    ids: Arc<Mutex<Vec<i64>>>,
    errors: Arc<Mutex<u64>>,
    task: tokio::task::JoinHandle<()>,
}

impl Feeder {
    pub fn start(
        url: &str,
        schema: &str,
        kind: &str,
        args: &str,
        batch: i32,
        every: Duration,
    ) -> Feeder {
        let stop = Arc::new(AtomicBool::new(false));
        let ids = Arc::new(Mutex::new(Vec::new()));
        let errors = Arc::new(Mutex::new(0u64));
        let sql =
            format!("SELECT \"{schema}\".enqueue($1, $2::text::jsonb) FROM generate_series(1, $3)");
        let (url, kind, args) = (url.to_string(), kind.to_string(), args.to_string());
        let (stop2, ids2, errors2) = (stop.clone(), ids.clone(), errors.clone());
        let task = actix_rt::spawn(async move {
            let mut client: Option<Client> = None;
            while !stop2.load(Ordering::Relaxed) {
                if client.as_ref().is_none_or(|c| c.is_closed()) {
                    let connect = tokio_postgres::connect(&url, NoTls);
                    client = match tokio::time::timeout(Duration::from_secs(2), connect).await {
                        Ok(Ok((c, conn))) => {
                            actix_rt::spawn(async move {
                                let _ = conn.await;
                            });
                            Some(c)
                        }
                        _ => None,
                    };
                }
                if let Some(c) = &client {
                    let params: [&(dyn tokio_postgres::types::ToSql + Sync); 3] =
                        [&kind, &args, &batch];
                    let call = c.query(&sql, &params);
                    match tokio::time::timeout(Duration::from_secs(2), call).await {
                        Ok(Ok(rows)) => ids2
                            .lock()
                            .unwrap()
                            .extend(rows.iter().map(|r| r.get::<_, i64>(0))),
                        _ => {
                            *errors2.lock().unwrap() += 1;
                            client = None;
                        }
                    }
                }
                tokio::time::sleep(every).await;
            }
        });
        Feeder {
            stop,
            ids,
            errors,
            task,
        }
    }

    /// Ids acknowledged so far.
    pub fn count(&self) -> usize {
        self.ids.lock().unwrap().len()
    }

    /// Stops the stream; returns the acknowledged ids and how many calls failed.
    pub async fn stop(self) -> (Vec<i64>, u64) {
        self.stop.store(true, Ordering::Relaxed);
        let _ = self.task.await;
        let ids = self.ids.lock().unwrap().clone();
        let errors = *self.errors.lock().unwrap();
        (ids, errors)
    }
}

/// An in-process engine under a steady stream of `work` jobs: 4 slots, the listener
/// checked every 500 ms, a [`Feeder`] enqueueing `batch` jobs with `args` every `every`.
/// Returns once `min_runs` jobs have run, so the fault lands on a busy engine.
pub struct UnderLoad {
    pub id: String,
    pub tally: Tally,
    pub engine: pglane::Engine,
    pub feeder: Feeder,
}

pub async fn under_load(
    db: &crate::support::TestDb,
    name: &str,
    args: &str,
    batch: i32,
    every: Duration,
    min_runs: usize,
) -> UnderLoad {
    let id = super::worker_id(name);
    let tally = Tally::default();
    let engine = super::fault_engine(db, &id, &tally)
        .lane(pglane::Lane::new("default").concurrency(4))
        .listener_health_interval(Duration::from_millis(500))
        .start()
        .await
        .unwrap();
    crate::support::wait_listening(&engine).await;
    let feeder = Feeder::start(&db.url, &db.schema, "work", args, batch, every);
    crate::support::wait_for("a steady flow", Duration::from_secs(10), || {
        let n = tally.runs().len();
        async move { n >= min_runs }
    })
    .await;
    UnderLoad {
        id,
        tally,
        engine,
        feeder,
    }
}

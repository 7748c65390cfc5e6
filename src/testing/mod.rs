//! A test kit for applications' own tests (feature `test-util`): a throwaway migrated
//! schema per test, look-ups and assertions over enqueued jobs, a job's handler run
//! inline with a real [`JobContext`], and a drain that runs a queue to empty.
//!
//! Enable it for tests only, with a dev-dependency on pglane carrying the feature:
//!
//! ```toml
//! [dev-dependencies]
//! pglane = { version = "0.1", features = ["test-util"] }
//! ```
//!
//! The database is `DATABASE_URL`, else `postgres://postgres@127.0.0.1:5432/test` if
//! something answers there, else a throwaway server (see [`devdb`](crate::devdb)).
//! Each [`TestSchema`] is a fresh schema with a random name, migrated, and dropped when
//! the value is dropped, also when the test fails.
//!
//! ```no_run
//! use pglane::testing::{Drained, TestSchema};
//! use pglane::{assert_enqueued, Enqueue, Job, JobContext, JobError};
//! use serde::{Deserialize, Serialize};
//! use serde_json::json;
//!
//! #[derive(Serialize, Deserialize)]
//! struct SendEmail { to: String }
//!
//! impl Job for SendEmail {
//!     const KIND: &'static str = "send_email";
//!     async fn run(self, _ctx: JobContext) -> Result<(), JobError> { Ok(()) }
//! }
//!
//! #[actix_rt::test]
//! async fn signup_sends_a_welcome_mail() {
//!     let db = TestSchema::new().await.unwrap();
//!     db.enqueue(Enqueue::new(SendEmail { to: "ada@example.com".into() })).await.unwrap();
//!     assert_enqueued!(db, SendEmail, json!({"to": "ada@example.com"}));
//!     let done = db.drain().register::<SendEmail>().run().await.unwrap();
//!     assert_eq!(done, Drained { completed: 1, ..Drained::default() });
//! }
//! ```

mod inline;
mod matching;

use std::marker::PhantomData;
use std::sync::{Arc, OnceLock};
use std::time::{Duration, SystemTime};

pub use inline::{Drain, Drained, Ran};
pub use matching::args_contain;

use crate::config::IntoPgConfig;
use crate::devdb::TempPostgres;
use crate::error::{Error, Result};
use crate::job::{DataMap, Job};
use crate::lane::NotifyGate;
use crate::ops::Ops;
use crate::store::Store;
use crate::{Backoff, Engine, EngineBuilder, Enqueue};

/// The tests' database URL, and the throwaway server behind it if one had to be started
/// (kept for the life of the process).
async fn database_url() -> Result<String> {
    static URL: OnceLock<std::result::Result<(String, Option<TempPostgres>), String>> =
        OnceLock::new();
    // Found on a thread of its own: the first caller may be on any runtime.
    let found = URL.get_or_init(|| {
        std::thread::spawn(|| {
            tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .map_err(|e| e.to_string())?
                .block_on(crate::devdb::database_url())
        })
        .join()
        .unwrap_or_else(|_| Err("finding a database panicked".into()))
    });
    match found {
        Ok((url, _)) => Ok(url.clone()),
        Err(e) => Err(Error::InvalidConfig(format!("no database for tests: {e}"))),
    }
}

/// A fresh, migrated schema for one test, dropped (with everything in it) when this
/// value is dropped.
pub struct TestSchema {
    url: String,
    schema: String,
    store: Store,
    ops: Arc<Ops>,
    data: Arc<DataMap>,
}

impl TestSchema {
    /// A fresh schema on the tests' database (see the [module docs](self)).
    pub async fn new() -> Result<TestSchema> {
        Self::at(&database_url().await?).await
    }

    /// A fresh schema on the database at `url`.
    pub async fn at(url: &str) -> Result<TestSchema> {
        let schema = format!("test_{:016x}", fastrand::u64(..));
        crate::migrate(url, &schema).await?;
        let channel = crate::migrate::channel_for(&schema)?;
        let store = Store::standalone(url.into_pg_config()?, &schema, &channel, 4)?;
        let gate = Arc::new(NotifyGate::new(&[], crate::DEFAULT_QUEUE, false));
        let ops = Arc::new(Ops::new(
            store.clone(),
            gate,
            Arc::new(|_| {}),
            Arc::from("pglane::testing"),
        ));
        Ok(TestSchema {
            url: url.to_string(),
            schema,
            store,
            ops,
            data: Arc::default(),
        })
    }

    /// The database URL.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// The schema's name.
    pub fn schema(&self) -> &str {
        &self.schema
    }

    /// Registers a value that handlers run by [`run_job`](Self::run_job) and
    /// [`drain`](Self::drain) find with [`JobContext::data`](crate::JobContext::data),
    /// like [`EngineBuilder::data`].
    pub fn data<T: std::any::Any + Send + Sync>(&mut self, value: T) -> &mut Self {
        Arc::make_mut(&mut self.data).insert(value);
        self
    }

    /// An engine builder on this schema with timings for tests: polls every 100 ms,
    /// retries after 10 to 100 ms, a 5 s lease and grace period, 3 s call timeout. Register kinds and lanes
    /// and start it as usual.
    pub fn engine(&self) -> EngineBuilder {
        Engine::builder(self.url.as_str())
            .schema(self.schema.clone())
            .poll_interval(Duration::from_millis(100))
            .poll_interval_without_listener(Duration::from_millis(100))
            .lease(Duration::from_secs(5))
            .call_timeout(Duration::from_secs(3))
            .maintenance_interval(Duration::from_millis(300))
            .shutdown_grace(Duration::from_secs(5))
            .retry_backoff(Backoff {
                base: Duration::from_millis(10),
                max: Duration::from_millis(100),
                jitter: 0.0,
            })
    }

    /// Enqueues a job into this schema (validated like [`Engine::enqueue`]), without
    /// starting an engine: for tests that check what is enqueued, then run it.
    pub async fn enqueue<J: Job>(&self, job: Enqueue<J>) -> Result<i64> {
        self.ops.enqueue(job.validate()?).await
    }

    /// The live, available jobs of kind `J` (due or scheduled), oldest first.
    pub async fn enqueued<J: Job>(&self) -> Result<Vec<EnqueuedJob<J>>> {
        Ok(self
            .store
            .enqueued_jobs(J::KIND)
            .await?
            .into_iter()
            .map(|r| EnqueuedJob {
                id: r.id,
                queue: r.queue,
                priority: r.priority,
                args: r.args,
                attempt: r.attempt,
                max_attempts: r.max_attempts,
                run_at: r.run_at,
                scheduled: r.scheduled,
                unique_key: r.unique_key,
                kind: PhantomData,
            })
            .collect())
    }

    /// Runs available job `id` (due or not) inline: claims it as the engine would, calls
    /// its handler (kind `J`) with a real [`JobContext`](crate::JobContext) (lane
    /// `inline`, this schema's pool, the values given to [`data`](Self::data)) on this
    /// task, and writes the outcome as the engine would (a failure is retried with the
    /// default backoff or failed for good, a cancel fails it, a snooze puts it back).
    /// Fails with [`Error::InvalidConfig`] if the job is not available or is of another
    /// kind.
    pub async fn run_job<J: Job>(&self, id: i64) -> Result<Ran> {
        let mut registry = crate::job::Registry::default();
        registry.add(crate::job::Registration::of::<J>());
        inline::run_one(&self.store, &self.ops, &registry, &self.data, id).await
    }

    /// A drain of the default queue: runs its jobs inline until none is left. Register
    /// the kinds to run, then [`run`](Drain::run) it.
    pub fn drain(&self) -> Drain<'_> {
        Drain::new(&self.store, &self.ops, &self.data)
    }
}

impl Drop for TestSchema {
    fn drop(&mut self) {
        let (url, schema) = (self.url.clone(), self.schema.clone());
        // Dropped on whatever thread the test ends on, maybe inside a runtime that is
        // shutting down: the schema is dropped from a thread and runtime of its own.
        let _ = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .ok()?;
            rt.block_on(async {
                // Through pglane's own connector, so a TLS URL works here too.
                let client = url
                    .parse::<crate::ConnectOptions>()
                    .ok()?
                    .connect()
                    .await
                    .ok()?;
                client
                    .batch_execute(&format!("DROP SCHEMA IF EXISTS \"{schema}\" CASCADE"))
                    .await
                    .ok()
            })
        })
        .join();
    }
}

/// A job waiting in the queue, as [`TestSchema::enqueued`] finds it.
#[derive(Clone)]
#[non_exhaustive]
pub struct EnqueuedJob<J> {
    /// The job's id.
    pub id: i64,
    /// Its queue.
    pub queue: String,
    /// Its priority.
    pub priority: i16,
    /// Its args, as stored.
    pub args: serde_json::Value,
    /// Attempts used so far.
    pub attempt: i32,
    /// Attempts allowed.
    pub max_attempts: i32,
    /// When it is due.
    pub run_at: SystemTime,
    /// Whether `run_at` is still ahead (scheduled, or backing off before a retry).
    pub scheduled: bool,
    /// Its unique key, if any.
    pub unique_key: Option<String>,
    kind: PhantomData<fn() -> J>,
}

impl<J> std::fmt::Debug for EnqueuedJob<J> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EnqueuedJob")
            .field("id", &self.id)
            .field("queue", &self.queue)
            .field("priority", &self.priority)
            .field("args", &self.args)
            .field("attempt", &self.attempt)
            .field("max_attempts", &self.max_attempts)
            .field("run_at", &self.run_at)
            .field("scheduled", &self.scheduled)
            .field("unique_key", &self.unique_key)
            .finish()
    }
}

impl<J: Job> EnqueuedJob<J> {
    /// The args decoded as `J`.
    pub fn job(&self) -> Result<J> {
        serde_json::from_value(self.args.clone())
            .map_err(|e| Error::InvalidConfig(format!("args of job {}: {e}", self.id)))
    }
}

//! # pglane
//!
//! An actor-based priority job engine on PostgreSQL for actix applications.
//!
//! Jobs live in a PostgreSQL table. Workers are woken by `LISTEN/NOTIFY`, poll as a
//! backstop, and claim jobs with `FOR UPDATE SKIP LOCKED` in exact priority order.
//! Priority ranges form *lanes* with reserved concurrency, so urgent work never waits
//! behind a bulk backlog. Any number of processes can share one database.
//!
//! Guarantees: **at-least-once execution** (a job whose worker dies is run again after
//! its lease expires, so handlers should be idempotent) and **exactly-once completion**
//! (every outcome is fenced by a lease token). NOTIFY is only a hint; the table is the
//! truth.
//!
//! # Module map
//!
//! A job's way through the engine, module by module (internal modules are named for a
//! maintainer; the public API is re-exported at the root):
//!
//! ```text
//! actor::listener    LISTEN on the schema's channel; notifications become JobsAvailable hints
//! actor::supervisor  the JobSupervisor shell: inbox (what children send), events, requests,
//!                    shutdown turn messages into core calls; effects carries out the result
//! dispatch           the pure dispatch core (no actix, no database): lanes and their slots,
//!                    borrowing, the poison-pill rule, runs, timeouts, stuck threads,
//!                    renewals, pause, shutdown; unit and property tested
//! actor::claimer     one per lane: its claim request and the claim round trip
//! actor::executor    the handler runtimes: runs a job, watches its polls, replaces a stuck thread
//! actor::completer   outcomes (and hand-backs) written in batches
//! actor::leases      lease renewal of started runs
//! actor::maintenance rescue of expired leases, pruning, vacuum, the schema check
//! actor::scheduler   fires due ticks of periodic jobs (schedule: cron, policies; pure)
//! store              the only place that runs SQL (statements in store/sql/*.sql)
//!
//! ops                enqueue, cancel, retry: one implementation for Engine and the messages
//! commands           the messages applications send (Enqueue, Pause, Shutdown, …)
//! engine, builder    the Engine handle, and its builder (settings in config)
//! lane, enqueue, job, outcome, stats, validate, backoff, error, migrate, admin
//! ```
//!
//! ```no_run
//! use pglane::{Engine, Enqueue, Job, JobContext, JobError, Lane};
//! use serde::{Deserialize, Serialize};
//!
//! #[derive(Serialize, Deserialize)]
//! struct SendEmail { to: String }
//!
//! impl Job for SendEmail {
//!     const KIND: &'static str = "send_email";
//!     async fn run(self, _ctx: JobContext) -> Result<(), JobError> { Ok(()) }
//! }
//!
//! #[actix::main]
//! async fn main() -> pglane::Result<()> {
//!     let url = "postgres://postgres@127.0.0.1:5432/test";
//!     pglane::migrate(url, "pglane").await?;
//!     let engine = Engine::builder(url)
//!         .lane(Lane::new("urgent").priorities(0..=9).concurrency(8))
//!         .lane(Lane::new("bulk").priorities(10..).concurrency(4))
//!         .register::<SendEmail>()
//!         .start()
//!         .await?;
//!     engine.supervisor()
//!         .send(Enqueue::new(SendEmail { to: "a@example.com".into() }).priority(5))
//!         .await??;
//!     engine.shutdown().await?;
//!     Ok(())
//! }
//! ```

mod actor;
pub mod admin;
mod backoff;
/// Internals exposed for the `hot_paths` micro-benchmark (feature `bench`). **Not part
/// of the stable API**: may change or disappear in any release.
#[cfg(feature = "bench")]
#[doc(hidden)]
pub mod bench_api;
mod builder;
mod cancel;
mod commands;
mod config;
mod connect;
#[cfg(feature = "dashboard")]
pub mod dashboard;
#[cfg(feature = "test-util")]
pub mod devdb;
mod dispatch;
mod engine;
mod enqueue;
mod error;
mod job;
mod lane;
mod migrate;
mod ops;
mod outcome;
#[cfg(feature = "prometheus")]
pub mod prometheus;
mod schedule;
mod schema_fit;
mod sqlstate;
mod stats;
mod store;
mod telemetry;
#[cfg(feature = "test-util")]
pub mod testing;
mod trace_context;
pub mod validate;

pub use actor::supervisor::JobSupervisor;
pub use backoff::Backoff;
pub use builder::EngineBuilder;
pub use cancel::CancelOutcome;
pub use commands::{
    Cancel, Enqueue, Pause, Resume, Retry, SetConcurrency, Shutdown, ShutdownReport, Stats,
};
pub use config::IntoPgConfig;
pub use connect::{ConnectOptions, SslMode};
pub use engine::Engine;
pub use enqueue::{JobOptions, DEFAULT_PRIORITY, DEFAULT_QUEUE};
pub use error::{Error, Result};
pub use job::{Job, JobContext, JobError};
pub use lane::{Lane, MAX_PRIORITY};
pub use migrate::{channel_for, migrate, migrate_with, migration_sql, SCHEMA_VERSION};
pub use outcome::MAX_ERROR_BYTES;
pub use schedule::{Missed, Schedule, ScheduleStats, DEFAULT_GRACE};
pub use stats::{
    ConnectionStats, DatabaseStats, EngineStats, HandlerStats, LaneStats, ListenerMode,
    ListenerStats, StateCounts, StatementTimes,
};
pub use store::{Conn, Manager, Pool};
pub use validate::Rejection;

/// The names most applications need.
pub mod prelude {
    pub use crate::{Engine, Enqueue, Job, JobContext, JobError, JobSupervisor, Lane};
}

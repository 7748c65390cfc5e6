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
/// Internals exposed for the `hot_paths` micro-benchmark. **Not part of the stable
/// API**: may change or disappear in any release.
#[doc(hidden)]
pub mod bench_api;
mod builder;
mod config;
mod control;
pub mod devdb;
mod engine;
mod enqueue;
mod error;
mod job;
mod lane;
mod migrate;
mod outcome;
mod stats;
mod store;
pub mod validate;

pub use actor::supervisor::JobSupervisor;
pub use backoff::Backoff;
pub use builder::EngineBuilder;
pub use config::IntoPgConfig;
pub use control::{Cancel, Pause, Resume, SetConcurrency, Shutdown, ShutdownReport, Stats};
pub use engine::Engine;
pub use enqueue::{Enqueue, JobOptions, DEFAULT_PRIORITY, DEFAULT_QUEUE};
pub use error::{Error, Result};
pub use job::{Job, JobContext, JobError};
pub use lane::{Lane, MAX_PRIORITY};
pub use migrate::{channel_for, migrate, migrate_with, SCHEMA_VERSION};
pub use outcome::MAX_ERROR_BYTES;
pub use stats::{
    ConnectionStats, DatabaseStats, EngineStats, LaneStats, ListenerMode, ListenerStats,
    StateCounts, StatementTimes,
};
pub use store::{Conn, Manager, Pool};
pub use validate::Rejection;

/// The names most applications need.
pub mod prelude {
    pub use crate::{Engine, Enqueue, Job, JobContext, JobError, JobSupervisor, Lane};
}

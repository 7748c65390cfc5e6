//! Fault injection: real faults against real PostgreSQL servers and real processes.
//!
//! Each scenario injects one fault (a killed backend, a read-only flip, a restart, a
//! failover, a killed or frozen worker process, a misbehaving handler) under load and
//! checks that nothing is lost, that no job is completed twice, and that the engine
//! recovers within a bound. Recovery times are printed as `FAULT-METRIC` lines (run with
//! `--nocapture` to see them).
//!
//! Faults that touch the whole server (read-only, restart, failover, random kills) run
//! on a private throwaway server ([`private_server`]); the others run on the shared one
//! and only ever touch backends tagged with the test's own, unique worker id.
//!
//! Tools here: [`Work`] (an in-process job that records every execution in a [`Tally`]),
//! [`Feeder`] (a steady enqueue stream that survives outages), [`Worker`] (a child
//! process: this test binary run again as a job worker, see `worker_process.rs`), a
//! ledger table for those children, and helpers to find and kill backends.

#![allow(dead_code)]

mod checks;
mod load;
mod servers;
mod worker_process;
mod workers;

mod bad_input;
mod cancel_running;
mod chaos;
mod devdb_signals;
mod failover;
mod flows;
mod handlers;
mod listener_killed;
mod poison;
mod pool_killed;
mod read_only;
mod restart;
mod stuck;
mod subscription_lost;
mod worker_killed;
mod worker_stopped;
pub use checks::*;
pub use load::*;
pub use servers::*;
pub use workers::*;

// Shared by the scenarios through `use super::*`.
pub use std::sync::Arc;

pub use pglane::devdb::TempPostgres;
pub use tokio_postgres::Client;

use std::time::{Duration, Instant};

use pglane::{Backoff, EngineBuilder};

use crate::support::TestDb;

/// Prints a measured figure in a greppable form.
pub fn metric(scenario: &str, what: &str, d: Duration) {
    println!("FAULT-METRIC {scenario}: {what} = {} ms", d.as_millis());
}

/// Waits until `f` answers `Some`, checking every 20 ms, failing after `timeout`.
pub async fn wait_some<T, F, Fut>(what: &str, timeout: Duration, mut f: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(v) = f().await {
            return v;
        }
        assert!(
            Instant::now() < deadline,
            "timed out after {timeout:?} waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// A unique worker id, so a test finds (and kills) only its own backends.
pub fn worker_id(scenario: &str) -> String {
    format!("fault-{scenario}-{:08x}", fastrand::u32(..))
}

/// Builder settings shared by the in-process fault scenarios: the test timings of
/// [`TestDb::engine`], plus a reconnect backoff capped at 1 s so an outage's end is
/// noticed within about a second (the default cap is 10 s).
///
/// With `FAULT_DEFAULT_BACKOFF=1` the default backoff is kept instead, to measure
/// recovery times with default settings (bounds may then be exceeded).
pub fn fault_engine(db: &TestDb, id: &str, tally: &Tally) -> EngineBuilder {
    let builder = db
        .engine()
        .worker_id(id)
        .register::<Work>()
        .data(tally.clone());
    if std::env::var_os("FAULT_DEFAULT_BACKOFF").is_some() {
        return builder;
    }
    builder.reconnect_backoff(Backoff {
        base: Duration::from_millis(100),
        max: Duration::from_secs(1),
        jitter: 0.3,
    })
}

/// A recovery bound: as given, or 15 s longer with `FAULT_DEFAULT_BACKOFF` (the default
/// probe backoff is capped at 10 s, so it cannot meet the tighter bounds).
pub fn bound(d: Duration) -> Duration {
    if std::env::var_os("FAULT_DEFAULT_BACKOFF").is_some() {
        d + Duration::from_secs(15)
    } else {
        d
    }
}

/// Flips the server to read-only (or back), as a demoted primary behaves: `ALTER SYSTEM`
/// (not allowed in a transaction block, so a statement of its own) and a
/// configuration reload.
pub async fn flip_read_only(admin: &Client, on: bool) {
    let set = if on {
        "ALTER SYSTEM SET default_transaction_read_only = on"
    } else {
        "ALTER SYSTEM RESET default_transaction_read_only"
    };
    admin.batch_execute(set).await.unwrap();
    admin
        .batch_execute("SELECT pg_reload_conf()")
        .await
        .unwrap();
}

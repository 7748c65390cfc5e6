//! The connection pool: bb8 over tokio-postgres, with per-connection prepared
//! statements and a generation counter that retires every connection at once after a
//! topology change (failover, read-only flip, restart).
//!
//! A server out of connection slots (SQLSTATE 53300, or any class 53 resource) is not a
//! topology change: the manager remembers the refusal and paces its next attempts with
//! a backoff, so a pool that cannot grow makes one attempt per interval instead of one
//! per checkout (each refused attempt costs the server a process start), and the store
//! keeps using the connections it already has.

use std::collections::HashMap;
use std::ops::Deref;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bb8_postgres::PostgresConnectionManager;
use tokio::sync::watch;
use tokio_postgres::{Client, NoTls, Row, Statement};

use super::timings::Timings;
use super::Store;
use crate::backoff::Backoff;
use crate::stats::{ConnectionStats, StatementTimes};

/// How long a pooled connection may sit idle before the pool closes it. Pools hand out
/// the most recently used connection first, so an engine that polls keeps one warm
/// connection and closes the rest once its load drops: other engines sharing a server
/// with a `max_connections` limit get the slots back within this (plus up to
/// [`REAPER_RATE`]).
pub(crate) const IDLE_TIMEOUT: Duration = Duration::from_secs(30);

/// How often the pools look for idle connections to close.
pub(crate) const REAPER_RATE: Duration = Duration::from_secs(5);

/// Pacing of connection attempts after the server refused one for lack of resources:
/// one attempt per pool per interval, 100 ms doubling to 2 s, ±30%.
const EXHAUSTED_BACKOFF: Backoff = Backoff {
    base: Duration::from_millis(100),
    max: Duration::from_secs(2),
    jitter: 0.3,
};

/// The pool type handed to handlers through [`JobContext::pool`](crate::JobContext::pool).
/// `pool.get().await?` gives a connection that dereferences to a
/// [`tokio_postgres::Client`].
pub type Pool = bb8::Pool<Manager>;

/// Which prepared statement; the index into a connection's statement cache.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) enum Stmt {
    Claim,
    Outcomes,
    Renew,
    Enqueue,
}

/// A pooled connection: the client plus what the engine keeps per connection.
pub struct Conn {
    client: Client,
    generation: u64,
    /// Set while a call is in flight; if the call is abandoned (timeout, cancelled
    /// future) or fails at the connection level, the pool discards the connection
    /// instead of handing out one in an unknown state.
    suspect: bool,
    statements: HashMap<Stmt, Statement>,
    /// Where claim and outcome durations are recorded (shared by the pool).
    timings: Arc<Timings>,
}

impl Deref for Conn {
    type Target = Client;
    fn deref(&self) -> &Client {
        &self.client
    }
}

impl Conn {
    /// Runs a cached prepared statement (preparing it on first use on this connection).
    pub(crate) async fn query_prepared(
        &mut self,
        which: Stmt,
        sql: &str,
        params: &[&(dyn tokio_postgres::types::ToSql + Sync)],
    ) -> Result<Vec<Row>, tokio_postgres::Error> {
        self.suspect = true;
        let statement = match self.statements.get(&which) {
            Some(s) => s.clone(),
            None => {
                let s = self.client.prepare(sql).await?;
                self.statements.insert(which, s.clone());
                s
            }
        };
        let started = Instant::now();
        let result = self.client.query(&statement, params).await;
        match which {
            Stmt::Claim => self.timings.claims.record(started.elapsed()),
            Stmt::Outcomes => self.timings.outcomes.record(started.elapsed()),
            Stmt::Renew | Stmt::Enqueue => {}
        }
        self.settle(&result);
        result
    }

    /// Runs an unprepared statement, guarded like [`query_prepared`](Self::query_prepared).
    pub(crate) async fn query_once(
        &mut self,
        sql: &str,
        params: &[&(dyn tokio_postgres::types::ToSql + Sync)],
    ) -> Result<Vec<Row>, tokio_postgres::Error> {
        self.suspect = true;
        let result = self.client.query(sql, params).await;
        self.settle(&result);
        result
    }

    /// Mutable access for transactions; mark the connection suspect around them.
    pub(crate) fn client_mut(&mut self) -> &mut Client {
        &mut self.client
    }

    pub(crate) fn set_suspect(&mut self, suspect: bool) {
        self.suspect = suspect;
    }

    fn settle<T>(&mut self, result: &Result<T, tokio_postgres::Error>) {
        // An error with an SQLSTATE was answered by a live server: the connection is
        // fine. One without came from the connection itself.
        self.suspect = match result {
            Ok(_) => false,
            Err(e) => {
                e.code().is_none()
                    || e.code()
                        .is_some_and(|c| super::classify::is_topology_sqlstate(c.code()))
            }
        };
    }
}

/// A failed connection attempt, as published by [`Manager::connect_failures`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct ConnectFailure {
    /// The error with its causes.
    pub(crate) reason: String,
    /// The server refused for lack of resources (SQLSTATE class 53, e.g. 53300 "too many
    /// clients"): back off, keep what we have, retire nothing.
    pub(crate) exhausted: bool,
    /// Attempts refused for lack of resources since the manager was made.
    pub(crate) refused: u64,
}

/// When the next connection attempt may be made, after refusals for lack of resources.
#[derive(Debug, Default)]
struct Pacing {
    refusals: u32,
    not_before: Option<Instant>,
}

/// bb8 manager: connects with tokio-postgres and stamps each connection with the
/// current generation.
#[derive(Clone)]
pub struct Manager {
    inner: PostgresConnectionManager<NoTls>,
    generation: Arc<AtomicU64>,
    /// The last connect error, published as it happens (see [`Manager::connect_failures`]).
    connect_failed: Arc<watch::Sender<ConnectFailure>>,
    pacing: Arc<Mutex<Pacing>>,
    timings: Arc<Timings>,
}

impl Manager {
    pub(crate) fn new(config: tokio_postgres::Config, generation: Arc<AtomicU64>) -> Self {
        Manager {
            inner: PostgresConnectionManager::new(config, NoTls),
            generation,
            connect_failed: Arc::new(watch::channel(ConnectFailure::default()).0),
            pacing: Arc::default(),
            timings: Arc::default(),
        }
    }

    /// Durations of the claims and outcome batches run on this manager's connections.
    pub(crate) fn timings(&self) -> Arc<Timings> {
        self.timings.clone()
    }

    /// Changes with every failed connection attempt, holding its error. bb8 reports a
    /// failed connect to a waiting `get()` only as "timed out", after its whole
    /// connection timeout: the store watches this to fail at once, with the reason
    /// (e.g. "database does not allow writes" from a standby).
    pub(crate) fn connect_failures(&self) -> watch::Receiver<ConnectFailure> {
        self.connect_failed.subscribe()
    }

    /// Waits out the pacing after refusals for lack of resources, if any.
    async fn paced(&self) {
        let not_before = self
            .pacing
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .not_before;
        if let Some(t) = not_before.filter(|t| *t > Instant::now()) {
            tokio::time::sleep_until(t.into()).await;
        }
    }

    /// Records how an attempt ended, for the pacing and for the store.
    fn attempted(&self, result: Result<(), &tokio_postgres::Error>) {
        let mut pacing = self.pacing.lock().unwrap_or_else(|p| p.into_inner());
        match result {
            Ok(()) => *pacing = Pacing::default(),
            Err(e) => {
                let exhausted = e
                    .code()
                    .is_some_and(|c| super::classify::is_exhaustion_sqlstate(c.code()));
                if exhausted {
                    pacing.refusals = pacing.refusals.saturating_add(1);
                    pacing.not_before =
                        Some(Instant::now() + EXHAUSTED_BACKOFF.delay(pacing.refusals));
                }
                let refused = self.connect_failed.borrow().refused + u64::from(exhausted);
                self.connect_failed.send_replace(ConnectFailure {
                    reason: crate::error::describe(e),
                    exhausted,
                    refused,
                });
            }
        }
    }

    /// The generation counter its connections are stamped with.
    pub(crate) fn generation(&self) -> Arc<AtomicU64> {
        self.generation.clone()
    }
}

impl std::fmt::Debug for Manager {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Manager")
            .field("generation", &self.generation.load(Ordering::Relaxed))
            .finish()
    }
}

impl bb8::ManageConnection for Manager {
    type Connection = Conn;
    type Error = tokio_postgres::Error;

    async fn connect(&self) -> Result<Conn, tokio_postgres::Error> {
        self.paced().await;
        let generation = self.generation.load(Ordering::Acquire);
        let client = bb8::ManageConnection::connect(&self.inner).await;
        self.attempted(client.as_ref().map(|_| ()));
        let client = client?;
        Ok(Conn {
            client,
            generation,
            suspect: false,
            statements: HashMap::new(),
            timings: self.timings.clone(),
        })
    }

    async fn is_valid(&self, conn: &mut Conn) -> Result<(), tokio_postgres::Error> {
        conn.client.simple_query("").await.map(|_| ())
    }

    fn has_broken(&self, conn: &mut Conn) -> bool {
        conn.suspect
            || conn.client.is_closed()
            || conn.generation != self.generation.load(Ordering::Acquire)
    }
}

/// A pool builder with the settings every pool of the engine shares: at most `size`
/// connections, closed after [`IDLE_TIMEOUT`] idle, most recently used handed out first
/// (so the others can go idle and close), no minimum kept open.
pub(crate) fn builder(size: u32, connect_timeout: Duration) -> bb8::Builder<Manager> {
    bb8::Pool::builder()
        .max_size(size)
        .connection_timeout(connect_timeout)
        .idle_timeout(IDLE_TIMEOUT)
        .reaper_rate(REAPER_RATE)
        .queue_strategy(bb8::QueueStrategy::Lifo)
        // No spare: bb8's `min_idle` counts *idle* connections, so even 1 would open a
        // second connection whenever the engine's warm one is busy. The engine's polls
        // keep that one open; under a connection limit a spare would be a slot another
        // engine needs.
        .min_idle(None)
        // Checked-out connections are not pinged: errors and the generation counter
        // retire bad ones, and a ping per checkout would double the round trips.
        .test_on_check_out(false)
}

/// Whether a checked-out connection belongs to a retired generation.
pub(crate) fn is_stale(conn: &Conn, generation: &AtomicU64) -> bool {
    conn.generation != generation.load(Ordering::Acquire) || conn.client.is_closed()
}

impl Store {
    /// The connections this engine holds now: its own pool, the handlers' pool (if it
    /// has one), and whether the listener is connected (the caller knows).
    pub(crate) fn connection_stats(&self, listener: bool) -> ConnectionStats {
        let engine = self.inner.pool.state();
        let handlers = self
            .inner
            .app_pool
            .as_ref()
            .map(|p| (p.state(), p.config().max_size));
        ConnectionStats {
            engine_open: engine.connections,
            engine_idle: engine.idle_connections,
            engine_max: self.inner.pool.config().max_size,
            handler_open: handlers.as_ref().map_or(0, |(s, _)| s.connections),
            handler_idle: handlers.as_ref().map_or(0, |(s, _)| s.idle_connections),
            handler_max: handlers.as_ref().map_or(0, |(_, m)| *m),
            listener,
            refused: self.inner.connect_failures.borrow().refused,
        }
    }

    /// Claim and outcome-batch durations since start.
    pub(crate) fn statement_times(&self) -> (StatementTimes, StatementTimes) {
        let t = &self.inner.timings;
        (t.claims.snapshot(), t.outcomes.snapshot())
    }
}

//! The connection pool: bb8 over tokio-postgres, with per-connection prepared
//! statements and a generation counter that retires every connection at once after a
//! topology change (failover, read-only flip, restart).
//!
//! A server out of connection slots (SQLSTATE 53300, or any class 53 resource) is not a
//! topology change: the manager reports the refusal to its [`Shortage`], which paces
//! its next attempts and holds the pool at one connection while it lasts (see
//! `store::shortage`).

use std::collections::HashMap;
use std::ops::Deref;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::watch;
use tokio_postgres::{Client, Row, Statement};

use crate::connect::Connector;

use super::shortage::Shortage;
use super::timings::Timings;
use super::Store;
use crate::stats::ConnectionStats;

/// How long a pooled connection may sit idle before the pool closes it. Pools hand out
/// the most recently used connection first, so an engine that polls keeps one warm
/// connection and closes the rest once its load drops: other engines sharing a server
/// with a `max_connections` limit get the slots back within this (plus up to
/// [`REAPER_RATE`]).
pub(crate) const IDLE_TIMEOUT: Duration = Duration::from_secs(30);

/// How often the pools look for idle connections to close.
pub(crate) const REAPER_RATE: Duration = Duration::from_secs(5);

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
    /// The pool's count of open connections, decremented when this one closes.
    live: Arc<AtomicU32>,
}

impl Drop for Conn {
    fn drop(&mut self) {
        self.live.fetch_sub(1, Ordering::AcqRel);
    }
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
                        .is_some_and(|c| crate::sqlstate::is_topology_sqlstate(c.code()))
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

/// bb8 manager: connects with tokio-postgres and stamps each connection with the
/// current generation.
#[derive(Clone)]
pub struct Manager {
    connector: Connector,
    generation: Arc<AtomicU64>,
    /// The last connect error, published as it happens (see [`Manager::connect_failures`]).
    connect_failed: Arc<watch::Sender<ConnectFailure>>,
    /// Refusals for lack of resources: pacing, holding at one connection, reactions.
    shortage: Shortage,
    timings: Arc<Timings>,
    /// Connections of this manager open now.
    live: Arc<AtomicU32>,
}

impl Manager {
    pub(crate) fn new(connector: Connector, generation: Arc<AtomicU64>) -> Self {
        Manager {
            connector,
            generation,
            connect_failed: Arc::new(watch::channel(ConnectFailure::default()).0),
            shortage: Shortage::default(),
            timings: Arc::default(),
            live: Arc::default(),
        }
    }

    /// What opens this manager's connections.
    pub(crate) fn connector(&self) -> &Connector {
        &self.connector
    }

    /// This manager's view of running out of connections (shared, cheap to clone).
    pub(crate) fn shortage(&self) -> Shortage {
        self.shortage.clone()
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

    /// Records how an attempt ended: a refusal for lack of resources goes to the
    /// shortage, any failure is published to the store.
    fn attempted(&self, result: std::result::Result<(), &tokio_postgres::Error>) {
        let Err(e) = result else {
            self.shortage.connected();
            return;
        };
        let exhausted = e
            .code()
            .is_some_and(|c| crate::sqlstate::is_exhaustion_sqlstate(c.code()));
        let refused = self.connect_failed.borrow().refused + u64::from(exhausted);
        self.connect_failed.send_replace(ConnectFailure {
            reason: self.connector.describe(e),
            exhausted,
            refused,
        });
        if exhausted {
            self.shortage.refused();
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
        self.shortage.before_connect(&self.live).await;
        let generation = self.generation.load(Ordering::Acquire);
        let connected = self.connector.connect_pooled().await;
        self.attempted(connected.as_ref().map(|_| ()));
        let client = connected?;
        Ok(Conn {
            client,
            generation,
            suspect: false,
            statements: HashMap::new(),
            timings: self.timings.clone(),
            live: {
                self.live.fetch_add(1, Ordering::AcqRel);
                self.live.clone()
            },
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
}

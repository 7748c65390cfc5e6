//! The connection pool: bb8 over tokio-postgres, with per-connection prepared
//! statements and a generation counter that retires every connection at once after a
//! topology change (failover, read-only flip, restart).

use std::collections::HashMap;
use std::ops::Deref;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use bb8_postgres::PostgresConnectionManager;
use tokio::sync::watch;
use tokio_postgres::{Client, NoTls, Row, Statement};

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
        let result = self.client.query(&statement, params).await;
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

/// bb8 manager: connects with tokio-postgres and stamps each connection with the
/// current generation.
#[derive(Clone)]
pub struct Manager {
    inner: PostgresConnectionManager<NoTls>,
    generation: Arc<AtomicU64>,
    /// The last connect error, published as it happens (see [`Manager::connect_failures`]).
    connect_failed: Arc<watch::Sender<String>>,
}

impl Manager {
    pub(crate) fn new(config: tokio_postgres::Config, generation: Arc<AtomicU64>) -> Self {
        Manager {
            inner: PostgresConnectionManager::new(config, NoTls),
            generation,
            connect_failed: Arc::new(watch::channel(String::new()).0),
        }
    }

    /// Changes with every failed connection attempt, holding its error. bb8 reports a
    /// failed connect to a waiting `get()` only as "timed out", after its whole
    /// connection timeout: the store watches this to fail at once, with the reason
    /// (e.g. "database does not allow writes" from a standby).
    pub(crate) fn connect_failures(&self) -> watch::Receiver<String> {
        self.connect_failed.subscribe()
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
        let generation = self.generation.load(Ordering::Acquire);
        let client = bb8::ManageConnection::connect(&self.inner)
            .await
            .inspect_err(|e| {
                self.connect_failed.send_replace(crate::error::describe(e));
            })?;
        Ok(Conn {
            client,
            generation,
            suspect: false,
            statements: HashMap::new(),
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

/// Whether a checked-out connection belongs to a retired generation.
pub(crate) fn is_stale(conn: &Conn, generation: &AtomicU64) -> bool {
    conn.generation != generation.load(Ordering::Acquire) || conn.client.is_closed()
}

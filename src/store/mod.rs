//! The only place that runs SQL. Each statement lives in its own file under `sql/`,
//! rendered once per schema; the engine's hot statements are prepared once per pooled
//! connection. [`Store`] serves a running engine through its pool; the free functions of
//! `listen`, `migration` and `operator` run on a connection the caller owns (the
//! listener's own, a migration's transaction, an operator's client).

mod breaker;
mod copy;
#[cfg(feature = "dashboard")]
pub(crate) mod dashboard;
mod encoding;
pub(crate) mod heartbeat;
mod idle;
#[cfg(feature = "test-util")]
mod inline;
pub(crate) mod listen;
mod maintenance;
pub(crate) mod migration;
pub(crate) mod operator;
mod pool;
mod prune;
mod render;
mod rows;
pub(crate) mod schedules;
mod shortage;
mod stuck;
mod timings;

use std::future::Future;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::sync::watch;
use tokio_postgres::GenericClient;

use breaker::{Breaker, Transition};

pub(crate) use encoding::require_utf8;
pub(crate) use pool::{builder as pool_builder, ConnectFailure, Stmt};
pub use pool::{Conn, Manager, Pool};
pub(crate) use render::render;
pub(crate) use rows::{ClaimRequest, ClaimedJob, OutcomeRow};
use shortage::Shortage;
pub(crate) use shortage::HANDLER_CONNECTION_WAIT;

use crate::backoff::Backoff;
use crate::enqueue::NewJob;
use crate::error::{Error, Result};

/// Locks a mutex whose data stays consistent even if a holder panicked.
fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// The statements, rendered for one schema.
pub(crate) struct Sql {
    pub(crate) claim: String,
    pub(crate) outcomes: String,
    pub(crate) renew: String,
    pub(crate) rescue: String,
    pub(crate) prune: String,
    pub(crate) summarize_history: String,
    pub(crate) enqueue: String,
    pub(crate) unique_lookup: String,
    pub(crate) stats: String,
    pub(crate) stats_finished: String,
    pub(crate) schema_version: String,
    pub(crate) cancel: String,
    pub(crate) cancelled_among: String,
    pub(crate) enqueue_flow: String,
    pub(crate) retry_finished: String,
    pub(crate) dead_rows: String,
    pub(crate) self_notify: String,
    pub(crate) vacuum: String,
    pub(crate) server_connections: String,
    pub(crate) schedule_insert: String,
    pub(crate) schedule_lock: String,
    pub(crate) schedule_redefine: String,
    pub(crate) schedule_heartbeat: String,
    pub(crate) schedule_load: String,
    pub(crate) schedule_fire: String,
    pub(crate) age_jobs: String,
}

impl Sql {
    fn new(schema: &str, channel: &str) -> Self {
        let r = |s: &str| render(s, schema, channel);
        Sql {
            claim: r(include_str!("sql/claim.sql")),
            outcomes: r(include_str!("sql/outcomes.sql")),
            renew: r(include_str!("sql/renew.sql")),
            rescue: r(include_str!("sql/rescue.sql")),
            prune: r(include_str!("sql/prune.sql")),
            summarize_history: r(include_str!("sql/summarize_history.sql")),
            enqueue: r(include_str!("sql/enqueue.sql")),
            unique_lookup: r(include_str!("sql/unique_lookup.sql")),
            stats: r(include_str!("sql/stats.sql")),
            stats_finished: r(include_str!("sql/stats_finished.sql")),
            schema_version: r(include_str!("sql/schema_version.sql")),
            cancel: r(include_str!("sql/cancel.sql")),
            cancelled_among: r(include_str!("sql/cancelled_among.sql")),
            enqueue_flow: r(include_str!("sql/enqueue_flow.sql")),
            retry_finished: r(include_str!("sql/retry_finished.sql")),
            dead_rows: r(include_str!("sql/dead_rows.sql")),
            self_notify: r(include_str!("sql/self_notify.sql")),
            vacuum: r(include_str!("sql/vacuum_jobs.sql")),
            server_connections: r(include_str!("sql/server_connections.sql")),
            schedule_insert: r(include_str!("sql/schedule_insert.sql")),
            schedule_lock: r(include_str!("sql/schedule_lock.sql")),
            schedule_redefine: r(include_str!("sql/schedule_redefine.sql")),
            schedule_heartbeat: r(include_str!("sql/schedule_heartbeat.sql")),
            schedule_load: r(include_str!("sql/schedule_load.sql")),
            schedule_fire: r(include_str!("sql/schedule_fire.sql")),
            age_jobs: r(include_str!("sql/age_jobs.sql")),
        }
    }
}

/// Handle to the database for one engine (one schema). Cheap to clone.
#[derive(Clone)]
pub(crate) struct Store {
    inner: Arc<Inner>,
}

struct Inner {
    pool: Pool,
    /// The handlers' pool: not used by the store, but retired with it.
    app_pool: Option<Pool>,
    /// Refusals of the handlers' pool (gates claims; see `shortage`).
    app_shortage: Option<Shortage>,
    schema: String,
    channel: String,
    sql: Sql,
    call_timeout: Duration,
    generation: Arc<AtomicU64>,
    /// Publishes the generation, so the listener reconnects when the pool is retired.
    recycled: watch::Sender<u64>,
    last_recycle: Mutex<Option<Instant>>,
    breaker: Mutex<Breaker>,
    /// The last outage: when the database came back, and how long it had been away.
    last_outage: Mutex<Option<(Instant, Duration)>>,
    /// Failed connection attempts of `pool` (see [`Manager::connect_failures`]).
    connect_failures: watch::Receiver<ConnectFailure>,
    /// Claim and outcome durations on `pool`'s connections.
    timings: Arc<timings::Timings>,
    /// Refusals of `pool`, and sightings of a full server (see `shortage`).
    shortage: Shortage,
    /// Names the server in errors of failed connection attempts.
    connect_error: crate::connect::Connector,
    /// Whether maintenance may summarize the history's BRIN index (cleared when the
    /// engine's role does not own the table: see `sql/summarize_history.sql`).
    summarize_history: AtomicBool,
}

/// Counts from one maintenance pass.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub(crate) struct MaintenanceReport {
    /// Whether this process held the cluster-wide maintenance lock for the pass.
    pub(crate) leader: bool,
    pub(crate) rescued: i64,
    pub(crate) poisoned: i64,
    /// The jobs failed as poison pills: (id, kind).
    pub(crate) poison_pills: Vec<(i64, String)>,
    pub(crate) pruned: u64,
}

impl Store {
    /// A store over `pool`, whose connections `manager` opens (the store watches its
    /// generation and its failed connection attempts).
    pub(crate) fn new(
        pool: Pool,
        manager: &Manager,
        app_pool: Option<(Pool, &Manager)>,
        schema: &str,
        channel: &str,
        call_timeout: Duration,
        probe_backoff: Backoff,
    ) -> Self {
        let generation = manager.generation();
        let connect_failures = manager.connect_failures();
        let (recycled, _) = watch::channel(generation.load(Ordering::Acquire));
        let managers: Vec<&Manager> = std::iter::once(manager)
            .chain(app_pool.as_ref().map(|(_, m)| *m))
            .collect();
        let store = Store {
            inner: Arc::new(Inner {
                pool,
                app_shortage: app_pool.as_ref().map(|(_, m)| m.shortage()),
                app_pool: app_pool.map(|(p, _)| p),
                schema: schema.to_string(),
                channel: channel.to_string(),
                sql: Sql::new(schema, channel),
                call_timeout,
                generation,
                recycled,
                last_recycle: Mutex::new(None),
                breaker: Mutex::new(Breaker::new(probe_backoff)),
                last_outage: Mutex::new(None),
                connect_failures,
                timings: manager.timings(),
                shortage: manager.shortage(),
                connect_error: manager.connector().clone(),
                summarize_history: AtomicBool::new(true),
            }),
        };
        shortage::react_to_refusals(&store, &managers);
        store
    }

    /// Changes whenever pooled connections are retired (a topology change).
    pub(crate) fn recycled(&self) -> watch::Receiver<u64> {
        self.inner.recycled.subscribe()
    }

    /// Whether the breaker is open (the database was found unavailable and is being
    /// probed).
    /// Why the database is considered unavailable, if it is.
    pub(crate) fn unavailable(&self) -> Option<String> {
        self.breaker().down_reason().map(str::to_string)
    }

    /// The last outage, if the database ever went away: how long ago it came back, and
    /// how long it had been away.
    pub(crate) fn last_outage(&self) -> Option<(Duration, Duration)> {
        lock(&self.inner.last_outage).map(|(back, lasted)| (back.elapsed(), lasted))
    }

    pub(crate) fn is_down(&self) -> bool {
        self.inner
            .breaker
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .is_down()
    }

    pub(crate) fn schema(&self) -> &str {
        &self.inner.schema
    }

    pub(crate) fn channel(&self) -> &str {
        &self.inner.channel
    }

    /// Runs `fut` under the call timeout and the breaker. An abandoned call leaves its
    /// connection marked suspect, so the pool discards it. While the breaker is open the
    /// call fails fast with [`Error::Unavailable`], unless it is the interval's probe.
    pub(crate) async fn timed<T>(&self, fut: impl Future<Output = Result<T>>) -> Result<T> {
        let admission = self
            .breaker()
            .admit(Instant::now())
            .map_err(Error::Unavailable)?;
        let result = match tokio::time::timeout(self.inner.call_timeout, fut).await {
            Ok(r) => r,
            Err(_) => Err(Error::Timeout(self.inner.call_timeout)),
        };
        let failure = match &result {
            Err(e) if e.is_topology_change() => Some(e.to_string()),
            _ => None,
        };
        let transition =
            self.breaker()
                .record(admission, failure.clone(), Instant::now(), fastrand::f64());
        match transition {
            Transition::WentDown => {
                tracing::warn!(
                    schema = %self.inner.schema,
                    reason = failure.as_deref().unwrap_or(""),
                    "database unavailable: retiring connections, polling, and probing once per interval"
                );
                self.recycle();
            }
            Transition::CameBack(after) => {
                tracing::info!(schema = %self.inner.schema, ?after, "database available again");
                *lock(&self.inner.last_outage) = Some((Instant::now(), after));
            }
            Transition::None => {}
        }
        result
    }

    fn breaker(&self) -> std::sync::MutexGuard<'_, Breaker> {
        self.inner.breaker.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Retires every pooled connection (at most once a second): after a failover or a
    /// read-only flip the pool must not keep connections to the old server. Idle ones
    /// are checked out and dropped at once; busy ones are discarded when returned; the
    /// listener reconnects when it sees the new generation.
    pub(crate) fn recycle(&self) {
        let mut last = self
            .inner
            .last_recycle
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        if last.is_some_and(|t| t.elapsed() < Duration::from_secs(1)) {
            return;
        }
        *last = Some(Instant::now());
        let generation = self.inner.generation.fetch_add(1, Ordering::AcqRel) + 1;
        self.inner.recycled.send_replace(generation);
        for pool in std::iter::once(&self.inner.pool).chain(self.inner.app_pool.as_ref()) {
            let pool = pool.clone();
            tokio::spawn(async move {
                let idle = pool.state().idle_connections;
                for _ in 0..idle {
                    // A stale connection is discarded on drop (has_broken).
                    match tokio::time::timeout(Duration::from_millis(200), pool.get()).await {
                        Ok(Ok(conn)) => drop(conn),
                        _ => break,
                    }
                }
            });
        }
    }

    /// Sends a notification on the engine's channel through the pool (the listener's
    /// end-to-end health check).
    pub(crate) async fn notify(&self, payload: &str) -> Result<()> {
        self.timed(async {
            let mut conn = self.conn().await?;
            conn.query_once(
                &self.inner.sql.self_notify,
                &[&self.inner.channel, &payload],
            )
            .await?;
            Ok(())
        })
        .await
    }

    /// A connection from the pool, never one from a retired generation.
    pub(crate) async fn conn(&self) -> Result<bb8::PooledConnection<'_, Manager>> {
        for _ in 0..8 {
            let conn = self.checkout().await?;
            if !pool::is_stale(&conn, &self.inner.generation) {
                return Ok(conn);
            }
            // Dropping a stale connection discards it (has_broken).
        }
        Err(Error::Pool("only retired connections available".into()))
    }

    /// Takes a connection, failing as soon as an attempt to open one fails: bb8 would
    /// wait out its connection timeout and then say only "timed out", which made every
    /// probe of an unreachable or read-only server slow and its reason useless.
    ///
    /// Except when the server refused for lack of resources (too many connections)
    /// while this pool still holds connections: then one of ours comes back soon, and
    /// waiting for it is how an engine keeps working under a connection limit.
    async fn checkout(&self) -> Result<bb8::PooledConnection<'_, Manager>> {
        let mut failures = self.inner.connect_failures.clone();
        failures.borrow_and_update();
        let get = self.inner.pool.get();
        tokio::pin!(get);
        loop {
            tokio::select! {
                got = &mut get => return got.map_err(|e| match e {
                    bb8::RunError::User(e) => self.inner.connect_error.error(e),
                    // Short of connections, the pool is held at one (see
                    // `Shortage::before_connect`): waiting for it is not an outage either.
                    bb8::RunError::TimedOut if failures.borrow().exhausted || self.short_of_connections() => {
                        Error::Exhausted(format!("no connection free: {}", failures.borrow().reason))
                    }
                    bb8::RunError::TimedOut => Error::Pool("timed out waiting for a connection".into()),
                }),
                Ok(()) = failures.changed() => {
                    let failure = failures.borrow_and_update().clone();
                    if !failure.exhausted {
                        return Err(Error::Pool(format!("could not connect: {}", failure.reason)));
                    }
                    if self.inner.pool.state().connections == 0 {
                        return Err(Error::Exhausted(format!("could not connect: {}", failure.reason)));
                    }
                }
            }
        }
    }

    /// The migrations applied to the schema (none if it has never been migrated); the
    /// caller judges how they fit this build (`migrate::fit_of`: the store does not
    /// import the migrator, which imports the store).
    pub(crate) async fn applied_migrations(&self) -> Result<Vec<crate::schema_fit::Applied>> {
        self.timed(async {
            let mut conn = self.conn().await?;
            let rows = conn.query_once(&self.inner.sql.schema_version, &[]).await;
            operator::applied_found(rows)
        })
        .await
    }

    /// Inserts validated jobs in one statement (with one NOTIFY); returns the ids of the
    /// jobs inserted, in input order. Jobs whose unique key is already live are skipped.
    pub(crate) async fn enqueue(&self, jobs: &[NewJob], notify: bool) -> Result<Vec<i64>> {
        self.timed(async {
            let mut conn = self.conn().await?;
            let params = rows::EnqueueParams::new(jobs, notify);
            let rows = conn
                .query_prepared(Stmt::Enqueue, &self.inner.sql.enqueue, &params.as_params())
                .await?;
            Ok(rows[0].get(0))
        })
        .await
    }

    /// Inserts one job; returns its id, or the id of the live job holding its unique key.
    pub(crate) async fn enqueue_one(&self, job: &NewJob, notify: bool) -> Result<i64> {
        if job.unique_key.is_none() {
            let ids = self.enqueue(std::slice::from_ref(job), notify).await?;
            return ids
                .first()
                .copied()
                .ok_or_else(|| Error::Conflict("insert returned no id".into()));
        }
        self.timed(async {
            let conn = self.conn().await?;
            self.insert_or_find(&**conn, job, notify).await
        })
        .await
    }

    /// [`enqueue_one`](Self::enqueue_one) inside the caller's transaction: the job exists
    /// only if the caller commits, and the NOTIFY is delivered only then.
    pub(crate) async fn enqueue_on<C: GenericClient>(
        &self,
        client: &C,
        job: &NewJob,
    ) -> Result<i64> {
        // The caller's transaction may be a long one in another process: always wake.
        self.timed(self.insert_or_find(client, job, true)).await
    }

    /// Inserts `job`, or finds the live job holding its unique key. The holder can finish
    /// between the conflict and the lookup; then the insert is simply tried again.
    async fn insert_or_find<C: GenericClient>(
        &self,
        client: &C,
        job: &NewJob,
        notify: bool,
    ) -> Result<i64> {
        let params = rows::EnqueueParams::new(std::slice::from_ref(job), notify);
        for _ in 0..5 {
            let rows = client
                .query(&self.inner.sql.enqueue, &params.as_params())
                .await?;
            let ids: Vec<i64> = rows[0].get(0);
            if let Some(id) = ids.first() {
                return Ok(*id);
            }
            if let Some(key) = &job.unique_key {
                let found = client.query(&self.inner.sql.unique_lookup, &[key]).await?;
                if let Some(row) = found.first() {
                    return Ok(row.get(0));
                }
            }
        }
        Err(Error::Conflict(format!(
            "unique key {:?} kept changing hands; try again",
            job.unique_key.as_deref().unwrap_or("")
        )))
    }

    /// Inserts a planned flow (see [`crate::Flow`]) on `client` (a pooled connection, or
    /// the caller's transaction); returns the ids in the plan's order.
    pub(crate) async fn enqueue_flow<C: GenericClient>(
        &self,
        client: &C,
        plan: &serde_json::Value,
    ) -> Result<Vec<i64>> {
        let rows = client
            .query(&self.inner.sql.enqueue_flow, &[plan])
            .await
            .map_err(|e| match e.as_db_error() {
                Some(db) if db.code().code() == "22023" => {
                    Error::InvalidFlow(db.message().trim_start_matches("pglane: ").to_string())
                }
                _ => Error::Database(e),
            })?;
        Ok(rows[0].get(0))
    }

    /// [`enqueue_flow`](Self::enqueue_flow) on a pooled connection, under the call
    /// timeout and the breaker.
    pub(crate) async fn enqueue_flow_pooled(&self, plan: &serde_json::Value) -> Result<Vec<i64>> {
        self.timed(async {
            let conn = self.conn().await?;
            self.enqueue_flow(&**conn, plan).await
        })
        .await
    }

    /// Claims up to `req.limit` jobs as a lease; sorted most urgent first.
    pub(crate) async fn claim(&self, req: &ClaimRequest) -> Result<Vec<ClaimedJob>> {
        self.shed_idle_when_short();
        self.handlers_can_connect().await?;
        self.timed(async {
            let mut conn = self.conn().await?;
            let limit = i64::from(req.limit);
            let rows = conn
                .query_prepared(
                    Stmt::Claim,
                    &self.inner.sql.claim,
                    &[
                        &req.floor,
                        &req.ceiling,
                        &req.queue,
                        &req.kinds,
                        &limit,
                        &req.token,
                        &req.lease_ms,
                        &req.worker_id,
                    ],
                )
                .await?;
            let mut jobs = rows
                .iter()
                .map(ClaimedJob::from_row)
                .collect::<Result<Vec<_>>>()?;
            jobs.sort_by_key(|j| (j.priority, j.run_at, j.id));
            Ok(jobs)
        })
        .await
    }

    /// Writes outcomes; returns the ids applied (the others were fenced off). Completed
    /// jobs are copied to `jobs_finished` only if `keep_completed`.
    pub(crate) async fn write_outcomes(
        &self,
        batch: &[OutcomeRow],
        keep_completed: bool,
    ) -> Result<Vec<i64>> {
        self.timed(async {
            let mut conn = self.conn().await?;
            let p = rows::OutcomeParams::new(batch, keep_completed);
            let rows = conn
                .query_prepared(Stmt::Outcomes, &self.inner.sql.outcomes, &p.as_params())
                .await?;
            Ok(rows.iter().map(|r| r.get(0)).collect())
        })
        .await
    }

    /// Extends leases; returns the ids still owned, each with whether a user asked to
    /// cancel it.
    pub(crate) async fn renew(
        &self,
        ids: &[i64],
        tokens: &[i64],
        lease_ms: f64,
    ) -> Result<Vec<(i64, bool)>> {
        self.timed(async {
            let mut conn = self.conn().await?;
            let rows = conn
                .query_prepared(
                    Stmt::Renew,
                    &self.inner.sql.renew,
                    &[&ids, &tokens, &lease_ms],
                )
                .await?;
            Ok(rows.iter().map(|r| (r.get(0), r.get(1))).collect())
        })
        .await
    }

    /// Which of `ids` (runs whose leases were lost) ended cancelled by a user.
    pub(crate) async fn cancelled_among(&self, ids: &[i64]) -> Result<Vec<i64>> {
        self.timed(async {
            let mut conn = self.conn().await?;
            let rows = conn
                .query_once(&self.inner.sql.cancelled_among, &[&ids])
                .await?;
            Ok(rows.iter().map(|r| r.get(0)).collect())
        })
        .await
    }

    /// Live jobs by state, priority and kind for `queue`, and finished counts.
    pub(crate) async fn stats(
        &self,
        queue: &str,
        history: bool,
    ) -> Result<(Vec<crate::stats::LiveRow>, Vec<(String, i64)>)> {
        self.timed(async {
            let mut conn = self.conn().await?;
            let live = conn.query_once(&self.inner.sql.stats, &[&queue]).await?;
            let live = live.iter().map(rows::live_row).collect();
            if !history {
                return Ok((live, Vec::new()));
            }
            let fin = conn
                .query_once(&self.inner.sql.stats_finished, &[&queue])
                .await?;
            let fin = fin
                .iter()
                .map(|r| (r.get::<_, String>(0), r.get::<_, i64>(1)))
                .collect();
            Ok((live, fin))
        })
        .await
    }

    /// Cancels a job (see `cancel()` in migration 5): at once if it has not started, by
    /// a durable request and a notification to its worker if it is running.
    pub(crate) async fn cancel(
        &self,
        id: i64,
        reason: Option<&str>,
        by: &str,
    ) -> Result<crate::cancel::CancelOutcome> {
        let answer = self
            .timed(async {
                let mut conn = self.conn().await?;
                let rows = conn
                    .query_once(&self.inner.sql.cancel, &[&id, &reason, &by])
                    .await?;
                Ok(rows[0].get::<_, String>(0))
            })
            .await
            .map_err(|e| crate::cancel::refusal(id, e))?;
        crate::cancel::CancelOutcome::parse(&answer)
    }

    /// Puts a failed or cancelled job back to run. Returns whether it was found.
    pub(crate) async fn retry_finished(&self, id: i64) -> Result<bool> {
        self.timed(async {
            let mut conn = self.conn().await?;
            Ok(!conn
                .query_once(&self.inner.sql.retry_finished, &[&id])
                .await?
                .is_empty())
        })
        .await
    }
}

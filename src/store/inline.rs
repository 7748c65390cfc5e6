//! The statements `pglane::testing` runs (feature `test-util`): a store of its own on a
//! small pool, a claim of one given job, the next job a drain runs, and the live jobs of
//! a kind. Part of the store, the only place that runs SQL; rendered per call, as tests
//! run them a few times each.

use std::sync::atomic::AtomicU64;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use super::{pool_builder, render, ClaimedJob, Manager, Pool, Store};
use crate::backoff::Backoff;
use crate::error::Result;

/// A live, available job as `enqueued_jobs.sql` reads it.
#[derive(Debug, Clone)]
pub(crate) struct EnqueuedRow {
    pub(crate) id: i64,
    pub(crate) queue: String,
    pub(crate) priority: i16,
    pub(crate) args: serde_json::Value,
    pub(crate) attempt: i32,
    pub(crate) max_attempts: i32,
    pub(crate) run_at: SystemTime,
    pub(crate) scheduled: bool,
    pub(crate) unique_key: Option<String>,
}

impl Store {
    /// A store of its own for `schema` (NOTIFY channel `channel`), on a pool of at most
    /// `size` connections.
    pub(crate) fn standalone(
        options: crate::connect::ConnectOptions,
        schema: &str,
        channel: &str,
        size: u32,
    ) -> Result<Store> {
        let connector = crate::connect::Connector::new(&options)?;
        let manager = Manager::new(connector, Arc::new(AtomicU64::new(0)));
        let pool = pool_builder(size, Duration::from_secs(10)).build_unchecked(manager.clone());
        Ok(Store::new(
            pool,
            &manager,
            None,
            schema,
            channel,
            Duration::from_secs(30),
            Backoff::RETRY,
        ))
    }

    /// The store's pool (handlers of inline runs get it, as handlers get the engine's).
    pub(crate) fn pool(&self) -> &Pool {
        &self.inner.pool
    }

    fn sql(&self, template: &str) -> String {
        render(template, &self.inner.schema, &self.inner.channel)
    }

    /// Claims available job `id` under lease `token`; `None` if it is not available.
    /// Answers the job and its queue.
    pub(crate) async fn claim_job(
        &self,
        id: i64,
        token: i64,
    ) -> Result<Option<(ClaimedJob, String)>> {
        let sql = self.sql(include_str!("sql/claim_job.sql"));
        self.timed(async {
            let mut conn = self.conn().await?;
            let rows = conn.query_once(&sql, &[&id, &token]).await?;
            match rows.first() {
                Some(r) => Ok(Some((ClaimedJob::from_row(r)?, r.try_get(10)?))),
                None => Ok(None),
            }
        })
        .await
    }

    /// The next job a drain of `queue` runs (see `sql/jobs_to_drain.sql`).
    pub(crate) async fn next_to_drain(
        &self,
        queue: &str,
        kinds: &[String],
        scheduled: bool,
        only: Option<&[i64]>,
    ) -> Result<Option<i64>> {
        let sql = self.sql(include_str!("sql/jobs_to_drain.sql"));
        let only: Option<Vec<i64>> = only.map(<[i64]>::to_vec);
        self.timed(async {
            let mut conn = self.conn().await?;
            let rows = conn
                .query_once(&sql, &[&queue, &kinds, &scheduled, &only])
                .await?;
            Ok(rows.first().map(|r| r.get(0)))
        })
        .await
    }

    /// The available jobs of `kinds` in `queue` now (see `sql/drain_candidates.sql`).
    pub(crate) async fn drain_candidates(&self, queue: &str, kinds: &[String]) -> Result<Vec<i64>> {
        let sql = self.sql(include_str!("sql/drain_candidates.sql"));
        self.timed(async {
            let mut conn = self.conn().await?;
            let rows = conn.query_once(&sql, &[&queue, &kinds]).await?;
            Ok(rows.iter().map(|r| r.get(0)).collect())
        })
        .await
    }

    /// Live, available jobs of `kind`, oldest first.
    pub(crate) async fn enqueued_jobs(&self, kind: &str) -> Result<Vec<EnqueuedRow>> {
        let sql = self.sql(include_str!("sql/enqueued_jobs.sql"));
        self.timed(async {
            let mut conn = self.conn().await?;
            let rows = conn.query_once(&sql, &[&kind]).await?;
            rows.iter()
                .map(|r| {
                    Ok(EnqueuedRow {
                        id: r.try_get(0)?,
                        queue: r.try_get(1)?,
                        priority: r.try_get(2)?,
                        args: r.try_get(3)?,
                        attempt: r.try_get(4)?,
                        max_attempts: r.try_get(5)?,
                        run_at: r.try_get(6)?,
                        scheduled: r.try_get(7)?,
                        unique_key: r.try_get(8)?,
                    })
                })
                .collect()
        })
        .await
    }
}

//! Maintenance statements: rescuing expired leases, pruning history, vacuuming the live
//! table. Part of the store (the only place that runs SQL), split out by responsibility.

use std::time::Duration;

use super::{Conn, MaintenanceReport, Store};
use crate::error::{Error, Result};

impl Store {
    /// Vacuums the live job table once `min_dead` dead row versions have piled up.
    ///
    /// Every claim and completion leaves a dead version behind, at the head of the claim
    /// index where the next claim starts its scan. Autovacuum visits a database only
    /// once per `autovacuum_naptime` (a minute by default), far too rarely for a table
    /// that turns over tens of thousands of rows a second: a 1M-job drain slowed from
    /// 62k to 45k jobs/s as claims read thousands of index pages of dead entries. A plain
    /// VACUUM takes no lock that claims wait for, and SKIP_LOCKED makes it step aside
    /// when another engine (or autovacuum) is already vacuuming. Returns whether it ran.
    ///
    /// Not counted by the breaker: a slow VACUUM is not an outage. Skipped while the
    /// database is known to be unavailable.
    pub(crate) async fn vacuum_if_needed(&self, min_dead: i64) -> Result<bool> {
        // Short of connections, the engine has one for claims and outcomes: a VACUUM
        // must not hold it for seconds (autovacuum still runs).
        if self.is_down() || self.short_of_connections() {
            return Ok(false);
        }
        let budget = self.inner.call_timeout * 2;
        let work = async {
            let mut conn = self.conn().await?;
            let dead: i64 = conn.query_once(&self.inner.sql.dead_rows, &[]).await?[0].get(0);
            if dead < min_dead {
                return Ok(false);
            }
            let vacuum = &self.inner.sql.vacuum;
            conn.set_suspect(true);
            conn.batch_execute(vacuum).await?;
            conn.set_suspect(false);
            Ok(true)
        };
        match tokio::time::timeout(budget, work).await {
            Ok(r) => r,
            Err(_) => Err(Error::Timeout(budget)),
        }
    }

    /// One maintenance pass: if this process wins the schema's advisory lock, rescue
    /// expired leases (with `rescue`, failing a job on its `max_rescues`-th) and prune
    /// finished jobs past retention.
    pub(crate) async fn maintain(
        &self,
        rescue: bool,
        max_rescues: i32,
        completed_retention: Duration,
        failed_retention: Duration,
    ) -> Result<MaintenanceReport> {
        self.timed(async {
            let mut conn = self.conn().await?;
            // Every engine looks, leader or not: an engine that holds idle spares is
            // never refused itself, so only the server can tell it others starve.
            let full: bool = conn
                .query_once(&self.inner.sql.server_connections, &[])
                .await?[0]
                .get(0);
            if full {
                self.note_server_full();
            }
            let report = self
                .maintenance_pass(
                    &mut conn,
                    rescue,
                    max_rescues,
                    completed_retention,
                    failed_retention,
                )
                .await;
            // A connection that may still hold the session lock is never handed back:
            // discarding it makes the server release the lock.
            if report.is_err() {
                conn.set_suspect(true);
            }
            report
        })
        .await
    }

    /// The body of [`maintain`](Self::maintain) on one connection.
    ///
    /// Leadership is a session advisory lock, not a transaction-scoped one, so that each
    /// statement commits on its own and no transaction stays open for the whole pass. An
    /// open transaction pins the xmin horizon, and while it is pinned the dead versions
    /// every claim leaves behind cannot be cleaned from the claim index. With the pass in
    /// one transaction, pruning 3M expired rows halved drain throughput (w1), and pruning
    /// 5M ran past the call timeout, whose rollback lost all the work, every pass, while
    /// the timeout tripped the breaker.
    async fn maintenance_pass(
        &self,
        conn: &mut Conn,
        rescue: bool,
        max_rescues: i32,
        completed_retention: Duration,
        failed_retention: Duration,
    ) -> Result<MaintenanceReport> {
        const BATCH: i64 = 5000;
        // Pruning stops after this share of the call timeout and goes on at the next
        // pass, so a large backlog of expired history never makes a pass time out.
        let prune_budget = self.inner.call_timeout / 4;
        let lock_key = format!("pglane:maintenance:{}", self.inner.schema);
        let leader: bool = conn
            .query_once(&self.inner.sql.maintenance_lock, &[&lock_key])
            .await?[0]
            .get(0);
        let mut report = MaintenanceReport {
            leader,
            ..Default::default()
        };
        if !leader {
            return Ok(report);
        }
        if rescue {
            let r = conn
                .query_once(&self.inner.sql.rescue, &[&max_rescues, &BATCH])
                .await?;
            report.rescued = r[0].get(0);
            report.poisoned = r[0].get(1);
        }
        // Suspect until the unlock below succeeds: abandoned mid-batch, the connection
        // must not go back to the pool.
        conn.set_suspect(true);
        report.pruned = super::prune::prune_finished(
            &**conn,
            &self.inner.sql.prune,
            completed_retention,
            failed_retention,
            Some(prune_budget),
        )
        .await?;
        conn.query_once(&self.inner.sql.maintenance_unlock, &[&lock_key])
            .await?;
        Ok(report)
    }
}

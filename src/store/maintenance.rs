//! Maintenance statements: rescuing expired leases, pruning history, vacuuming the live
//! table. Part of the store (the only place that runs SQL), split out by responsibility.

use std::sync::atomic::Ordering;
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

    /// Aging of one lane (see `sql/age_jobs.sql`): raises jobs of priorities `lo + 1
    /// ..= hi` in `queue` that waited more than `age_after` past their `run_at` to `lo`.
    /// Returns how many it raised (at most 1,000 per call; the rest at the next).
    pub(crate) async fn age_jobs(
        &self,
        lo: i16,
        hi: i16,
        queue: &str,
        age_after: Duration,
    ) -> Result<u64> {
        self.timed(async {
            let mut conn = self.conn().await?;
            let ms = age_after.as_secs_f64() * 1000.0;
            let rows = conn
                .query_once(
                    &self.inner.sql.age_jobs,
                    &[&lo, &hi, &queue, &ms, &1000_i64],
                )
                .await?;
            Ok(rows.len() as u64)
        })
        .await
    }

    /// Summarizes the history's new BRIN ranges before pruning (see
    /// `sql/summarize_history.sql`). Skipped for good when the engine's role does not own
    /// the table (the prune still works, reading unsummarized ranges); skipped this pass
    /// when (auto)vacuum holds the table's lock.
    async fn summarize_history(&self, conn: &mut Conn) -> Result<()> {
        if !self.inner.summarize_history.load(Ordering::Relaxed) {
            return Ok(());
        }
        // As around every transaction of the store: a pass cut short mid-transaction
        // leaves the connection suspect, so the pool discards it.
        conn.set_suspect(true);
        let tx = conn.client_mut().transaction().await?;
        tx.batch_execute("SET LOCAL lock_timeout = '50ms'").await?;
        let done = match tx.query(&self.inner.sql.summarize_history, &[]).await {
            Ok(_) => tx.commit().await,
            Err(e) => {
                // Dropping the transaction rolls it back.
                drop(tx);
                Err(e)
            }
        };
        conn.set_suspect(false);
        match done {
            Ok(()) => Ok(()),
            Err(e) => match e.code().map(|c| c.code()) {
                // Not the table's owner: pruning reads unsummarized ranges instead.
                Some("42501") => {
                    self.inner.summarize_history.store(false, Ordering::Relaxed);
                    tracing::info!(
                        schema = %self.inner.schema,
                        "the engine's role does not own jobs_finished: history pruning will read \
                         pages autovacuum has not summarized yet (run VACUUM on it, or \
                         brin_summarize_new_values as its owner, to spare that)"
                    );
                    Ok(())
                }
                // 55P03: (auto)vacuum has the table; it summarizes as it goes.
                Some("55P03") => Ok(()),
                _ => Err(e.into()),
            },
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
            report
        })
        .await
    }

    /// The body of [`maintain`](Self::maintain) on one connection.
    ///
    /// Leadership (one engine per schema rescues and prunes at a time) is a transaction
    /// lock taken inside each statement, held only while that statement runs (see
    /// `sql/rescue.sql`): no lock and no transaction spans the pass. A session lock
    /// held across it stayed with a leader frozen between two statements (SIGSTOP, a
    /// paused VM) and blocked rescues cluster-wide until its connection died; an open
    /// transaction would pin the xmin horizon, so the dead versions every claim leaves
    /// behind could not be cleaned from the claim index (with the pass in one
    /// transaction, pruning 3M expired rows halved drain throughput, and pruning 5M ran
    /// past the call timeout, whose rollback lost all the work, every pass).
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
        let mut report = MaintenanceReport::default();
        if rescue {
            let r = conn
                .query_once(&self.inner.sql.rescue, &[&max_rescues, &BATCH, &lock_key])
                .await?;
            report.rescued = r[0].get(0);
            report.poisoned = r[0].get(1);
            report.leader = r[0].get(2);
            report.poison_pills = r[0]
                .get::<_, Vec<i64>>(3)
                .into_iter()
                .zip(r[0].get::<_, Vec<String>>(4))
                .collect();
            if !report.leader {
                return Ok(report);
            }
        }
        self.summarize_history(conn).await?;
        report.pruned = super::prune::prune_finished(
            &**conn,
            &self.inner.sql.prune,
            completed_retention,
            failed_retention,
            Some(prune_budget),
            Some(&lock_key),
        )
        .await?;
        Ok(report)
    }
}

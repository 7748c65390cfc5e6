//! Engine heartbeats and lane controls (migration 6): what an engine writes so that
//! operators (the dashboard) see it, and the lane controls it reads and applies. Part of
//! the store (the only place that runs SQL), split out by responsibility.

use super::{render, Store};
use crate::error::Result;

/// A lane control set by an operator (`lane_controls_for_queue.sql`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct LaneControl {
    pub(crate) lane: String,
    pub(crate) paused: bool,
    pub(crate) concurrency: Option<i32>,
    pub(crate) version: i64,
}

/// One heartbeat's content.
pub(crate) struct Beat<'a> {
    pub(crate) worker_id: &'a str,
    pub(crate) queue: &'a str,
    pub(crate) interval_ms: i32,
    pub(crate) listener: &'a str,
    pub(crate) database_ok: bool,
    pub(crate) lanes: serde_json::Value,
}

impl Store {
    /// The lane controls of `queue`.
    pub(crate) async fn lane_controls(&self, queue: &str) -> Result<Vec<LaneControl>> {
        let sql = render(
            include_str!("sql/lane_controls_for_queue.sql"),
            self.schema(),
            "",
        );
        self.timed(async {
            let conn = self.conn().await?;
            let rows = conn.query(&sql, &[&queue]).await?;
            rows.iter()
                .map(|r| {
                    Ok(LaneControl {
                        lane: r.try_get(0)?,
                        paused: r.try_get(1)?,
                        concurrency: r.try_get(2)?,
                        version: r.try_get(3)?,
                    })
                })
                .collect()
        })
        .await
    }

    /// Writes this engine's heartbeat and forgets engines that stopped without saying so.
    pub(crate) async fn heartbeat(&self, beat: &Beat<'_>) -> Result<()> {
        let upsert = render(include_str!("sql/heartbeat.sql"), self.schema(), "");
        let forget = render(
            include_str!("sql/engines_forget_dead.sql"),
            self.schema(),
            "",
        );
        self.timed(async {
            let conn = self.conn().await?;
            conn.execute(
                &upsert,
                &[
                    &beat.worker_id,
                    &beat.queue,
                    &beat.interval_ms,
                    &beat.listener,
                    &beat.database_ok,
                    &beat.lanes,
                ],
            )
            .await?;
            conn.execute(&forget, &[]).await?;
            Ok(())
        })
        .await
    }

    /// Removes this engine's heartbeat row (it is stopping).
    pub(crate) async fn engine_stopped(&self, worker_id: &str) -> Result<()> {
        let sql = render(include_str!("sql/engine_stopped.sql"), self.schema(), "");
        self.timed(async {
            let conn = self.conn().await?;
            conn.execute(&sql, &[&worker_id]).await?;
            Ok(())
        })
        .await
    }
}

//! The stuck-thread count of a job (see `sql/stuck_runs.sql`). Part of the store, the
//! only place that runs SQL; rendered per call because it runs only when a handler
//! thread is found stuck.

use super::{render, Store};
use crate::error::Result;

impl Store {
    /// How many earlier runs of job `id` blocked their handler thread (0 if the job is
    /// gone).
    pub(crate) async fn stuck_runs(&self, id: i64) -> Result<i64> {
        let sql = render(
            include_str!("sql/stuck_runs.sql"),
            &self.inner.schema,
            &self.inner.channel,
        );
        self.timed(async {
            let mut conn = self.conn().await?;
            Ok(conn.query_once(&sql, &[&id]).await?[0].get(0))
        })
        .await
    }
}

//! How busy a queue is (see `sql/busy_jobs.sql`), for `Engine::wait_idle`.

use super::{render, Store};
use crate::error::Result;

/// Jobs keeping a queue busy.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Busy {
    /// Due and waiting to be claimed.
    pub(crate) due: i64,
    /// Running (their outcome not written yet).
    pub(crate) running: i64,
}

impl Store {
    /// Jobs of `kinds` in `queue` that are due or running.
    pub(crate) async fn busy_jobs(&self, queue: &str, kinds: &[String]) -> Result<Busy> {
        let sql = render(
            include_str!("sql/busy_jobs.sql"),
            &self.inner.schema,
            &self.inner.channel,
        );
        self.timed(async {
            let mut conn = self.conn().await?;
            let row = &conn.query_once(&sql, &[&queue, &kinds]).await?[0];
            Ok(Busy {
                due: row.try_get(0)?,
                running: row.try_get(1)?,
            })
        })
        .await
    }
}

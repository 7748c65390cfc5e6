//! Bulk enqueue by binary COPY: the fastest way to insert many jobs.

use std::pin::pin;
use std::time::SystemTime;

use tokio_postgres::binary_copy::BinaryCopyInWriter;

use super::rows::{copy_run_at, JsonbText, COPY_COLUMNS};
use super::{render, Store};
use crate::enqueue::NewJob;
use crate::error::Result;

impl Store {
    /// Inserts validated jobs with `COPY … FROM STDIN (FORMAT binary)` in one
    /// transaction, with one NOTIFY carrying `hint` (the most urgent due priority)
    /// delivered at commit. All or nothing: any error, a unique-key conflict included
    /// (COPY cannot skip rows), writes nothing. Returns the number of rows inserted.
    ///
    /// The whole call runs under the call timeout.
    pub(crate) async fn copy_jobs(&self, jobs: &[NewJob], hint: Option<i16>) -> Result<u64> {
        // Rendered per call rather than kept with the hot statements: a bulk load costs
        // milliseconds at least, so two string replacements are noise.
        let prelude = render(
            include_str!("sql/copy_prelude.sql"),
            self.schema(),
            self.channel(),
        );
        let copy = render(
            include_str!("sql/copy_jobs.sql"),
            self.schema(),
            self.channel(),
        );
        self.timed(async {
            let mut conn = self.conn().await?;
            // An abandoned COPY leaves the connection mid-protocol: keep it suspect until
            // the commit returns, so the pool discards it on any failure.
            conn.set_suspect(true);
            let tx = conn.client_mut().transaction().await?;
            let db_now: SystemTime = tx.query_one(&prelude, &[&hint]).await?.get(0);
            let sink = tx.copy_in(&copy).await?;
            let mut writer = pin!(BinaryCopyInWriter::new(sink, &COPY_COLUMNS));
            for job in jobs {
                let run_at = copy_run_at(job, db_now);
                writer
                    .as_mut()
                    .write(&[
                        &job.kind,
                        &job.queue,
                        &job.priority,
                        &JsonbText(&job.args),
                        &job.max_attempts,
                        &run_at,
                        &job.timeout_ms,
                        &job.unique_key,
                    ])
                    .await?;
            }
            let inserted = writer.as_mut().finish().await?;
            tx.commit().await?;
            conn.set_suspect(false);
            Ok(inserted)
        })
        .await
    }
}

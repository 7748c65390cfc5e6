//! Operator functions (`pglane::admin`, what the `pglane` tool runs) on a plain
//! connection, without an engine: every statement they run comes from the store.

use std::time::Duration;

use pglane::admin::{self, JobState};
use pglane::{CancelOutcome, Error};

use crate::support::*;

#[actix_rt::test]
async fn operators_inspect_cancel_retry_and_prune_without_an_engine() {
    let db = TestDb::new().await;
    let (c, s) = (&db.client, db.schema.as_str());
    admin::ensure_migrated(c, s).await.unwrap();
    let never = format!("{s}_never");
    assert!(matches!(
        admin::ensure_migrated(c, &never).await,
        Err(Error::NotMigrated { found: 0, .. })
    ));
    assert!(matches!(
        admin::list(c, "Bad Name", None, 10).await,
        Err(Error::InvalidConfig(_))
    ));

    admin::set_statement_timeout(c, Duration::from_millis(1500))
        .await
        .unwrap();
    let timeout: String = db.query("SHOW statement_timeout").await[0].get(0);
    assert_eq!(timeout, "1500ms");

    let id = |sql: &str| {
        let sql = sql.to_string();
        let db = &db;
        async move { db.query(&sql).await[0].get::<_, i64>(0) }
    };
    let due = id("SELECT {schema}.enqueue('due')").await;
    let later = id("SELECT {schema}.enqueue('later', delay => interval '1 hour')").await;
    let other = id("SELECT {schema}.enqueue('other', queue => 'mail')").await;

    let queues = admin::queue_counts(c, s).await.unwrap();
    let names: Vec<&str> = queues.iter().map(|q| q.queue.as_str()).collect();
    assert_eq!(names, ["default", "mail"]);
    assert_eq!(
        (queues[0].states.available, queues[0].states.scheduled),
        (1, 1)
    );
    assert!(queues[0].oldest_wait.is_some());
    assert_eq!(queues[1].states.available, 1);

    let listed = admin::list(c, s, None, 10).await.unwrap();
    let ids: Vec<i64> = listed.iter().map(|j| j.id).collect();
    assert_eq!(ids, [other, later, due], "newest first");
    assert_eq!(listed[1].state, JobState::Scheduled);
    let scheduled = admin::list(c, s, Some(JobState::Scheduled), 10)
        .await
        .unwrap();
    assert_eq!(scheduled.iter().map(|j| j.id).collect::<Vec<_>>(), [later]);
    assert_eq!(admin::list(c, s, None, 1).await.unwrap().len(), 1);

    assert_eq!(
        admin::cancel(c, s, due, Some("not needed"), "ops")
            .await
            .unwrap(),
        CancelOutcome::Cancelled
    );
    assert!(
        matches!(
            admin::cancel(c, s, due, None, "").await,
            Err(pglane::Error::NotCancellable { .. })
        ),
        "already cancelled"
    );
    let cancelled = admin::list(c, s, Some(JobState::Cancelled), 10)
        .await
        .unwrap();
    assert_eq!(cancelled.iter().map(|j| j.id).collect::<Vec<_>>(), [due]);
    assert!(cancelled[0].finished_at.is_some());

    assert!(admin::retry(c, s, due).await.unwrap());
    assert!(
        !admin::retry(c, s, due).await.unwrap(),
        "live again, not retryable"
    );
    let back = admin::list(c, s, Some(JobState::Available), 10)
        .await
        .unwrap();
    assert!(back.iter().any(|j| j.id == due && j.attempt == 0));

    assert_eq!(
        admin::cancel(c, s, other, None, "").await.unwrap(),
        CancelOutcome::Cancelled
    );
    assert_eq!(
        admin::prune(c, s, Duration::from_secs(3600)).await.unwrap(),
        0
    );
    assert_eq!(admin::prune(c, s, Duration::ZERO).await.unwrap(), 1);
    assert_eq!(db.count(&format!("id = {other}")).await, 0);
    assert_eq!(db.count("true").await, 2);
    db.cleanup().await;
}

//! Enqueueing paths: inside the caller's transaction, from plain SQL, unique keys, and
//! the user's cancel and retry.

use std::time::{Duration, Instant};

use pglane::{CancelOutcome, Enqueue, Error, Lane};

use crate::support::*;

/// A job enqueued in a transaction exists only if it commits: a rolled-back job is
/// never written and never run; a committed one runs.
#[actix_rt::test]
async fn enqueue_tx_follows_the_callers_transaction() {
    let db = TestDb::new().await;
    let mut events = Events::new();
    let engine = db
        .engine()
        .register::<Probe>()
        .data(events.sender())
        .start()
        .await
        .unwrap();
    let mut client = connect(&db.url).await;

    let tx = client.transaction().await.unwrap();
    let ghost = engine
        .enqueue_tx(&tx, Enqueue::new(Probe::new("rolled-back")).priority(1))
        .await
        .unwrap();
    // Visible inside the transaction, nowhere else.
    let inside: i64 = tx
        .query_one(&format!("SELECT count(*) FROM \"{}\".jobs", db.schema), &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(inside, 1);
    assert_eq!(
        db.count("true").await,
        0,
        "uncommitted: invisible to others"
    );
    tx.rollback().await.unwrap();
    assert_eq!(db.count("true").await, 0);
    // Bounded window: several polls pass and nothing runs.
    assert!(events.none_within(Duration::from_millis(800)).await);

    let tx = client.transaction().await.unwrap();
    let id = engine
        .enqueue_tx(&tx, Enqueue::new(Probe::new("committed")).priority(1))
        .await
        .unwrap();
    assert_ne!(id, ghost);
    tx.commit().await.unwrap();
    let e = events.next(Duration::from_secs(5)).await;
    assert_eq!((e.id, e.tag.as_str()), (id, "committed"));
    db.wait_count(
        &format!("id = {id} AND state = 'completed'"),
        1,
        Duration::from_secs(5),
    )
    .await;
    assert_eq!(db.count(&format!("id = {ghost}")).await, 0);
    assert_eq!(db.count("true").await, 1);

    engine.shutdown().await.unwrap();
    db.cleanup().await;
}

/// Another service enqueues with the SQL function; its NOTIFY wakes the engine. Polling
/// is set to 30 s, so only the notification can explain a prompt start.
#[actix_rt::test]
async fn sql_function_enqueue_wakes_a_worker_by_notify() {
    let db = TestDb::new().await;
    let mut events = Events::new();
    let engine = db
        .engine()
        .poll_interval(Duration::from_secs(30))
        .poll_interval_without_listener(Duration::from_secs(30))
        .register::<Probe>()
        .data(events.sender())
        .start()
        .await
        .unwrap();
    wait_listening(&engine).await;

    let other_service = connect(&db.url).await;
    let sent = Instant::now();
    let row = other_service
        .query_one(
            &format!(
                "SELECT \"{}\".enqueue('probe', '{{\"tag\": \"from-sql\", \"behave\": \"Succeed\"}}', priority => 4)",
                db.schema
            ),
            &[],
        )
        .await
        .unwrap();
    let id: i64 = row.get(0);
    let e = events.next(Duration::from_secs(3)).await;
    assert_eq!((e.id, e.tag.as_str(), e.priority), (id, "from-sql", 4));
    let waited = e.at - sent;
    assert!(
        waited < Duration::from_secs(2),
        "woken after {waited:?}: the notification was missed"
    );
    db.wait_count(
        &format!("id = {id} AND state = 'completed'"),
        1,
        Duration::from_secs(5),
    )
    .await;

    engine.shutdown().await.unwrap();
    db.cleanup().await;
}

/// A live unique key returns the holder's id instead of inserting; once the holder is
/// finished the key is free again.
#[actix_rt::test]
async fn unique_key_dedupes_live_jobs_and_frees_on_completion() {
    let db = TestDb::new().await;
    let mut events = Events::new();
    let engine = db
        .engine()
        .lane(Lane::new("only").concurrency(1))
        .register::<Probe>()
        .data(events.sender())
        .start()
        .await
        .unwrap();
    engine.pause("only").await.unwrap();

    let first = engine
        .enqueue(Enqueue::new(Probe::new("first")).unique_key("report:42"))
        .await
        .unwrap();
    let second = engine
        .enqueue(Enqueue::new(Probe::new("second")).unique_key("report:42"))
        .await
        .unwrap();
    assert_eq!(first, second, "the live job's id is returned");
    let via_supervisor = engine
        .supervisor()
        .send(Enqueue::new(Probe::new("third")).unique_key("report:42"))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(via_supervisor, first);
    let in_bulk = engine
        .enqueue_many([
            Enqueue::new(Probe::new("dup")).unique_key("report:42"),
            Enqueue::new(Probe::new("fresh")).unique_key("report:43"),
        ])
        .await
        .unwrap();
    assert_eq!(in_bulk.len(), 1, "the duplicate is skipped in bulk too");
    assert_eq!(db.count("unique_key = 'report:42'").await, 1);

    engine.resume("only").await.unwrap();
    let ran = events.take(2, Duration::from_secs(5)).await;
    assert_eq!(ran[0].tag, "first", "the first job's args were kept");
    db.wait_count(
        "unique_key IN ('report:42', 'report:43') AND state = 'completed'",
        2,
        Duration::from_secs(5),
    )
    .await;

    let again = engine
        .enqueue(Enqueue::new(Probe::new("again")).unique_key("report:42"))
        .await
        .unwrap();
    assert_ne!(again, first, "a finished job no longer holds its key");
    let e = events.next(Duration::from_secs(5)).await;
    assert_eq!((e.id, e.tag.as_str()), (again, "again"));
    db.wait_count(
        "unique_key = 'report:42' AND state = 'completed'",
        2,
        Duration::from_secs(5),
    )
    .await;

    engine.shutdown().await.unwrap();
    db.cleanup().await;
}

/// A user cancels a job that has not started (it ends `cancelled`), and retries failed
/// and cancelled jobs (they run again with fresh attempts).
#[actix_rt::test]
async fn user_cancel_and_retry() {
    let db = TestDb::new().await;
    let mut events = Events::new();
    let engine = db
        .engine()
        .lane(Lane::new("only").concurrency(1))
        .register::<Probe>()
        .data(events.sender())
        .start()
        .await
        .unwrap();
    engine.pause("only").await.unwrap();

    let id = engine
        .enqueue(Enqueue::new(Probe::new("unwanted")))
        .await
        .unwrap();
    assert_eq!(engine.cancel(id).await.unwrap(), CancelOutcome::Cancelled);
    assert!(
        matches!(engine.cancel(id).await, Err(Error::NotCancellable { reason, .. }) if reason.contains("already cancelled")),
        "already cancelled"
    );
    assert!(
        matches!(engine.cancel(i64::MAX).await, Err(Error::NotCancellable { reason, .. }) if reason.starts_with("no job")),
        "unknown id"
    );
    let rows = db
        .query(&format!(
            "SELECT state, attempt FROM {{schema}}.jobs_finished WHERE id = {id}"
        ))
        .await;
    assert_eq!(
        (rows[0].get::<_, String>(0), rows[0].get::<_, i32>(1)),
        ("cancelled".to_string(), 0)
    );
    assert_eq!(
        db.count(&format!("id = {id}")).await,
        1,
        "moved, not copied"
    );

    engine.resume("only").await.unwrap();
    assert!(
        events.none_within(Duration::from_millis(500)).await,
        "a cancelled job never runs"
    );

    // Retry of a cancelled job: it runs.
    assert!(engine.retry(id).await.unwrap());
    let e = events.next(Duration::from_secs(5)).await;
    assert_eq!((e.id, e.attempt), (id, 1));
    db.wait_count(
        &format!("id = {id} AND state = 'completed'"),
        1,
        Duration::from_secs(5),
    )
    .await;
    assert!(
        !engine.retry(id).await.unwrap(),
        "a completed job is not retried"
    );

    // Retry of a failed job: back with fresh attempts, its history kept.
    let failed = engine
        .enqueue(Enqueue::new(Probe::behave("doomed", Behave::Cancel)))
        .await
        .unwrap();
    let e = events.next(Duration::from_secs(5)).await;
    assert_eq!(e.id, failed);
    db.wait_count(
        &format!("id = {failed} AND state = 'failed'"),
        1,
        Duration::from_secs(5),
    )
    .await;
    assert!(engine.retry(failed).await.unwrap());
    let e = events.next(Duration::from_secs(5)).await;
    assert_eq!((e.id, e.attempt), (failed, 1), "fresh attempts");
    db.wait_count(
        &format!("id = {failed} AND state = 'failed'"),
        1,
        Duration::from_secs(5),
    )
    .await;
    assert_eq!(errors_of(&db, failed).await.len(), 2, "history is kept");

    engine.shutdown().await.unwrap();
    db.cleanup().await;
}

/// An engine claims only from its own queue.
#[actix_rt::test]
async fn engines_claim_only_their_own_queue() {
    let db = TestDb::new().await;
    let mut events = Events::new();
    let mail = db
        .engine()
        .queue("mail")
        .register::<Probe>()
        .data(events.sender())
        .start()
        .await
        .unwrap();
    let in_mail = mail
        .enqueue(Enqueue::new(Probe::new("mail")).queue("mail"))
        .await
        .unwrap();
    let in_default = mail
        .enqueue(Enqueue::new(Probe::new("default")))
        .await
        .unwrap();
    let e = events.next(Duration::from_secs(5)).await;
    assert_eq!((e.id, e.tag.as_str()), (in_mail, "mail"));
    assert!(
        events.none_within(Duration::from_millis(600)).await,
        "the mail engine must not run default-queue jobs"
    );
    assert_eq!(
        db.count(&format!(
            "id = {in_default} AND state = 'available' AND attempt = 0"
        ))
        .await,
        1
    );
    let stats = mail.stats().await.unwrap();
    assert_eq!(
        stats.states.available, 0,
        "stats cover the engine's queue only"
    );
    mail.shutdown().await.unwrap();
    db.cleanup().await;
}

#[actix_rt::test]
async fn enqueue_into_a_backlogged_lane_skips_its_notify() {
    let db = TestDb::new().await;
    let mut events = Events::new();
    let engine = db
        .engine()
        .lane(Lane::new("default").concurrency(1))
        .register::<Probe>()
        .data(events.sender())
        .start()
        .await
        .unwrap();
    let slow = || Enqueue::new(Probe::behave("slow", Behave::SleepMs(1500)));
    engine.enqueue_many([slow(), slow(), slow()]).await.unwrap();
    events.next(Duration::from_secs(5)).await;

    // A LISTEN session of our own, like another process's listener.
    let (client, mut conn) = tokio_postgres::connect(&db.url, tokio_postgres::NoTls)
        .await
        .unwrap();
    let (tx, mut heard) = tokio::sync::mpsc::unbounded_channel::<String>();
    actix_rt::spawn(async move {
        use futures_util::StreamExt;
        let mut messages = futures_util::stream::poll_fn(move |cx| conn.poll_message(cx));
        while let Some(Ok(m)) = messages.next().await {
            if let tokio_postgres::AsyncMessage::Notification(n) = m {
                if !n.payload().starts_with("pglane-ping:") {
                    let _ = tx.send(n.payload().to_string());
                }
            }
        }
    });
    client
        .batch_execute(&format!("LISTEN \"{}_jobs\"", db.schema))
        .await
        .unwrap();

    // The lane's claim came back full and its one slot is busy: it will claim again as
    // soon as the slot frees, so the enqueue sends no NOTIFY.
    engine.enqueue(slow()).await.unwrap();
    let quiet = tokio::time::timeout(Duration::from_millis(400), heard.recv()).await;
    assert!(
        quiet.is_err(),
        "no NOTIFY into a backlogged lane, got {quiet:?}"
    );

    // Paused, the lane will not claim: enqueues must wake other processes again.
    engine.pause("default").await.unwrap();
    engine
        .enqueue(Enqueue::new(Probe::new("urgent")).priority(0))
        .await
        .unwrap();
    let payload = tokio::time::timeout(Duration::from_secs(3), heard.recv()).await;
    assert_eq!(
        payload.ok().flatten().as_deref(),
        Some("0"),
        "a NOTIFY with the priority hint"
    );

    engine
        .shutdown_within(Duration::from_millis(100))
        .await
        .unwrap();
    drop(client);
    db.cleanup().await;
}

//! `stats().listener.last_notification` says when the last notification arrived, and
//! only that: a local wake-up (a retry, an enqueue waking this engine's own lanes, a
//! rescue) is not a notification.

use std::time::Duration;

use pglane::{Enqueue, Lane};

use crate::support::*;

/// Polls are 30 s apart here, so a prompt start can only come from a wake-up.
#[actix_rt::test]
async fn local_wake_ups_are_not_counted_as_notifications() {
    let db = TestDb::new().await;
    let mut events = Events::new();
    let engine = db
        .engine()
        .poll_interval(Duration::from_secs(30))
        .poll_interval_without_listener(Duration::from_secs(30))
        .lane(Lane::new("only").concurrency(2))
        .register::<Probe>()
        .data(events.sender())
        .start()
        .await
        .unwrap();
    wait_listening(&engine).await;
    // A job that fails for good at once (the handler cancels it).
    let id = engine
        .enqueue(Enqueue::new(Probe::behave("c", Behave::Cancel)))
        .await
        .unwrap();
    events.next(Duration::from_secs(5)).await;
    db.wait_count(
        &format!("id = {id} AND state = 'failed'"),
        1,
        Duration::from_secs(5),
    )
    .await;
    // Its enqueue sent a NOTIFY: that one counts.
    let s = wait_stats(
        &engine,
        "the enqueue's notification",
        Duration::from_secs(5),
        |s| s.listener.last_notification.is_some(),
    )
    .await;
    let heard = s.listener.last_notification;

    // A retry sends no NOTIFY; it wakes this engine's lanes directly, through the
    // supervisor's message as through the engine handle.
    assert!(engine
        .supervisor()
        .send(pglane::Retry(id))
        .await
        .unwrap()
        .unwrap());
    let e = events.next(Duration::from_secs(5)).await;
    assert_eq!(e.id, id, "the retried job ran at once");
    db.wait_count(
        &format!("id = {id} AND state = 'failed'"),
        1,
        Duration::from_secs(5),
    )
    .await;
    assert!(engine.retry(id).await.unwrap());
    assert_eq!(events.next(Duration::from_secs(5)).await.id, id);
    let s = engine.stats().await.unwrap();
    assert_eq!(
        s.listener.last_notification, heard,
        "a local wake-up is not a notification"
    );

    // A notification from another service does count.
    db.query("SELECT {schema}.enqueue('probe', '{\"tag\": \"sql\", \"behave\": \"Succeed\"}')")
        .await;
    events.next(Duration::from_secs(5)).await;
    let s = wait_stats(
        &engine,
        "a newer notification",
        Duration::from_secs(5),
        |s| s.listener.last_notification > heard,
    )
    .await;
    assert!(s.listener.last_notification.is_some());
    engine.shutdown().await.unwrap();
    db.cleanup().await;
}

//! The server flips to read-only under load (`ALTER SYSTEM SET
//! default_transaction_read_only = on` + reload, as a demoted primary behaves), stays so
//! for 10 s, then flips back. No job fails or is charged an attempt, every connection of
//! the engine is replaced, stats say the database is unavailable and the listener is
//! poll-only during the flip, and work resumes within 3 s of the flip back.

use std::time::{Duration, Instant};

use pglane::ListenerMode;

use super::*;
use crate::support::*;

#[actix_rt::test]
async fn read_only_flip_charges_nothing_and_recycles_every_connection() {
    let pg = private_server(&[]).await;
    let db = TestDb::at(&pg.url()).await;
    // The admin session writes ALTER SYSTEM through the flip.
    db.client
        .batch_execute("SET default_transaction_read_only = off")
        .await
        .unwrap();
    let UnderLoad {
        id,
        tally,
        engine,
        feeder,
    } = under_load(
        &db,
        "readonly",
        r#"{"sleep_ms": 20}"#,
        3,
        Duration::from_millis(20),
        50,
    )
    .await;

    let flip = server_now(&db.client).await;
    let flipped = Instant::now();
    flip_read_only(&db.client, true).await;
    let s = wait_stats(
        &engine,
        "the flip to be noticed",
        Duration::from_secs(5),
        |s| !s.database.available && s.listener.mode == ListenerMode::PollOnly,
    )
    .await;
    metric(
        "read_only",
        "flip noticed (db unavailable + listener poll-only)",
        flipped.elapsed(),
    );
    let reason = s.database.last_error.clone().unwrap_or_default();
    assert!(
        reason.contains("read-only") || reason.contains("does not allow writes"),
        "reason: {reason:?}"
    );
    let started_before_hold = tally.runs().len();
    tokio::time::sleep(Duration::from_secs(10).saturating_sub(flipped.elapsed())).await;
    let s = engine.stats().await.unwrap();
    assert!(
        !s.database.available,
        "still unavailable at the end of the flip: {s:?}"
    );
    assert_eq!(s.listener.mode, ListenerMode::PollOnly);
    let started_during = tally.runs().len() - started_before_hold;
    assert_eq!(
        started_during, 0,
        "nothing can be claimed from a read-only server"
    );

    flip_read_only(&db.client, false).await;
    let reset = server_now(&db.client).await;
    let resumed = wait_some("work to resume", bound(Duration::from_secs(3)), || {
        nth_completion_after(&db.client, &db.schema, reset, 5)
    })
    .await;
    metric(
        "read_only",
        "work resumed after the flip back (5 new jobs done)",
        resumed,
    );
    let s = wait_stats(&engine, "the listener back", Duration::from_secs(5), |s| {
        s.database.available && s.listener.mode == ListenerMode::Notify
    })
    .await;
    assert!(s.listener.connects >= 2);

    let (acked, errors) = feeder.stop().await;
    drained(&db.client, &db.schema, Duration::from_secs(30)).await;
    let audit = audit(&db.client, &db.schema, &acked, &tally.executions()).await;
    assert_eq!(
        audit.reruns, 0,
        "the engine survived: no run of it was repeated"
    );
    println!(
        "read_only: {audit:?}, {} acknowledged, {errors} enqueue calls refused",
        acked.len()
    );
    let ours = backends(&db.client, &id, &["engine", "app", "listener"]).await;
    assert!(!ours.is_empty());
    for b in &ours {
        assert!(b.started > flip, "{b:?} predates the flip");
    }
    engine.shutdown().await.unwrap();
}

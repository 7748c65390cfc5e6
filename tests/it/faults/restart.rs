//! The server restarts under load (`pg_ctl restart -m fast`), then is stopped for 15 s
//! and started again. The engine stays up through both, reports the outage in its
//! stats, recovers within 5 s of the server accepting connections, and loses nothing.

use std::time::{Duration, Instant};

use pglane::ListenerMode;

use super::*;
use crate::support::*;

#[actix_rt::test]
async fn engine_survives_restart_and_a_long_stop() {
    let pg = Arc::new(private_server(&[]).await);
    let db = TestDb::at(&pg.url()).await;
    let UnderLoad {
        id: _,
        tally,
        engine,
        feeder,
    } = under_load(
        &db,
        "restart",
        r#"{"sleep_ms": 20}"#,
        3,
        Duration::from_millis(20),
        50,
    )
    .await;

    // 1. A fast restart.
    let p = pg.clone();
    let t = Instant::now();
    blocking(move || p.restart_server("fast")).await;
    println!("restart took {:?}", t.elapsed());
    let admin = connect_retry(&db.url, Duration::from_secs(10)).await;
    let back = server_now(&admin).await;
    let recovered = wait_some(
        "work after the restart",
        bound(Duration::from_secs(5)),
        || nth_completion_after(&admin, &db.schema, back, 5),
    )
    .await;
    metric(
        "restart",
        "fast restart: work back after the server accepts",
        recovered,
    );
    wait_stats(&engine, "the listener back", Duration::from_secs(5), |s| {
        s.database.available && s.listener.mode == ListenerMode::Notify
    })
    .await;

    // 2. Stopped for 15 s.
    let p = pg.clone();
    blocking(move || p.stop_server("fast")).await;
    let stopped = Instant::now();
    let s = wait_stats(
        &engine,
        "the outage in stats",
        Duration::from_secs(5),
        |s| !s.database.available && s.listener.mode == ListenerMode::PollOnly,
    )
    .await;
    println!("while stopped: {:?}", s.database);
    tokio::time::sleep(Duration::from_secs(15).saturating_sub(stopped.elapsed())).await;
    let s = engine
        .stats()
        .await
        .expect("the engine answers while the server is down");
    assert!(!s.database.available);
    let p = pg.clone();
    blocking(move || p.start_server()).await;
    let admin = connect_retry(&db.url, Duration::from_secs(10)).await;
    let back = server_now(&admin).await;
    let recovered = wait_some(
        "work after the long stop",
        bound(Duration::from_secs(5)),
        || nth_completion_after(&admin, &db.schema, back, 5),
    )
    .await;
    metric(
        "restart",
        "15 s stop: work back after the server accepts",
        recovered,
    );
    wait_stats(&engine, "the listener back", Duration::from_secs(5), |s| {
        s.database.available && s.listener.mode == ListenerMode::Notify
    })
    .await;

    let (acked, errors) = feeder.stop().await;
    drained(&admin, &db.schema, Duration::from_secs(30)).await;
    let audit = audit(&admin, &db.schema, &acked, &tally.executions()).await;
    assert_eq!(
        audit.reruns, 0,
        "the engine survived: no run of it was repeated"
    );
    println!(
        "restart: {audit:?}, {} acknowledged, {errors} enqueue calls failed",
        acked.len()
    );
    engine.shutdown().await.unwrap();
}

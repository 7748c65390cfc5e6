//! Lanes with a latency target throttle less urgent lanes while it is missed, report it
//! in stats, and give the slots back when calm.

use std::time::Duration;

use pglane::{Enqueue, Lane};

use crate::support::*;

/// A target no job can meet (1 µs) throttles the low lane at the second urgent start
/// (the target is a p99: one wait over it is allowed); with no urgent job after that,
/// the slots come back.
#[actix_rt::test]
async fn a_missed_target_throttles_the_low_lane_until_calm() {
    let db = TestDb::new().await;
    let mut events = Events::new();
    let engine = db
        .engine()
        .lane(
            Lane::new("urgent")
                .priorities(0..=9)
                .concurrency(2)
                .target_wait(Duration::from_micros(1)),
        )
        // Not borrowing: the urgent job must start in its own lane to be observed.
        .lane(
            Lane::new("bulk")
                .priorities(10..)
                .concurrency(64)
                .work_conserving(false),
        )
        .register::<Probe>()
        .data(events.sender())
        .start()
        .await
        .unwrap();
    let s = engine.stats().await.unwrap();
    assert_eq!(s.lanes[0].target_wait, Some(Duration::from_micros(1)));
    assert_eq!((s.lanes[0].throttle, s.lanes[1].throttle), (1.0, 1.0));
    for allowed in [true, false] {
        engine
            .enqueue(Enqueue::new(Probe::new("urgent")).priority(0))
            .await
            .unwrap();
        events.take(1, Duration::from_secs(5)).await;
        let s = engine.stats().await.unwrap();
        if allowed {
            assert_eq!(s.lanes[1].throttle, 1.0, "allowed: {:?}", s.lanes[1]);
        }
    }
    let s = engine.stats().await.unwrap();
    assert_eq!(s.lanes[1].throttle, 0.5, "halved: {:?}", s.lanes[1]);
    assert_eq!(
        s.lanes[0].throttle, 1.0,
        "the urgent lane itself is not throttled"
    );
    assert!(s.lanes[0].wait_p99.is_some_and(|d| d > Duration::ZERO));
    // The bulk lane still runs (at least one slot), and calm gives the slots back.
    engine
        .enqueue(Enqueue::new(Probe::new("bulk")).priority(100))
        .await
        .unwrap();
    events.take(1, Duration::from_secs(5)).await;
    wait_stats(&engine, "the slots back", Duration::from_secs(10), |s| {
        s.lanes[1].throttle == 1.0
    })
    .await;
    engine.shutdown().await.unwrap();
    db.cleanup().await;
}

//! Misbehaving handlers: one panics, one sleeps (asynchronously) far past its timeout,
//! one blocks its thread in a loop that never yields, far past its timeout. Each costs a
//! failed attempt; their slots come back (the lane's running count drops to 0 while the
//! blocking handler is still stuck), and ordinary jobs keep completing meanwhile.

use std::time::{Duration, Instant};

use pglane::{Enqueue, Lane};

use super::*;
use crate::support::*;

#[actix_rt::test]
async fn panicking_hanging_and_blocking_handlers_give_their_slots_back() {
    let db = TestDb::new().await;
    let mut events = Events::new();
    let engine = db
        .engine()
        .lane(Lane::new("default").concurrency(3))
        .register::<Probe>()
        .data(events.sender())
        .start()
        .await
        .unwrap();
    let timeout = Duration::from_millis(500);
    let block = Duration::from_secs(4);
    let bad = [
        Probe::behave("panic", Behave::Panic),
        Probe::behave("hang", Behave::SleepMs(60_000)),
        Probe::behave("block", Behave::BlockMs(block.as_millis() as u64)),
    ];
    let bad = bad
        .into_iter()
        .map(|p| Enqueue::new(p).priority(0).max_attempts(1).timeout(timeout));
    let bad_ids = engine.enqueue_many(bad).await.unwrap();
    let first = events.take(3, Duration::from_secs(5)).await;
    let blocked_at = first
        .iter()
        .find(|e| e.tag == "block")
        .expect("the blocking job started with the others")
        .at;

    // Ordinary jobs, enqueued while all three slots are taken by the bad ones.
    let ok = (0..30).map(|i| Enqueue::new(Probe::new(format!("ok{i}"))).priority(100));
    engine.enqueue_many(ok).await.unwrap();
    db.wait_count("args->>'tag' LIKE 'ok%' AND state = 'completed'", 30, block)
        .await;
    let all_done = blocked_at.elapsed();
    assert!(
        all_done < block,
        "30 ordinary jobs completed in {all_done:?}, while the blocking handler was stuck"
    );
    metric(
        "handlers",
        "30 ordinary jobs done while a handler blocks its thread",
        all_done,
    );
    let s = wait_stats(&engine, "every slot free", Duration::from_secs(2), |s| {
        s.lanes[0].running == 0
    })
    .await;
    assert_eq!(s.lanes[0].concurrency, 3);
    metric(
        "handlers",
        "all 3 slots free again after the bad handlers started",
        blocked_at.elapsed(),
    );
    assert!(
        blocked_at.elapsed() < block,
        "the slots came back while the handler was still blocking"
    );

    for (id, cause) in bad_ids.iter().zip(["panic", "timeout", "timeout"]) {
        db.wait_count(
            &format!("id = {id} AND state = 'failed'"),
            1,
            Duration::from_secs(5),
        )
        .await;
        let errors = errors_of(&db, *id).await;
        assert_eq!(errors.len(), 1, "{errors:?}");
        assert_eq!(errors[0]["cause"], cause, "{errors:?}");
    }

    // After the blocking handler finally returns (its late outcome is ignored), the
    // engine still runs work in every slot.
    let after = Instant::now() + block;
    tokio::time::sleep_until(after.into()).await;
    let more = (0..6).map(|i| Enqueue::new(Probe::new(format!("late{i}"))));
    engine.enqueue_many(more).await.unwrap();
    db.wait_count(
        "args->>'tag' LIKE 'late%' AND state = 'completed'",
        6,
        Duration::from_secs(5),
    )
    .await;
    assert_eq!(db.count("state = 'failed'").await, 3);
    engine.shutdown().await.unwrap();
    db.cleanup().await;
}

//! Misbehaving handlers: one panics, one sleeps (asynchronously) far past its timeout,
//! one blocks its thread far past its timeout. Each costs a failed attempt (causes
//! `panic`, `timeout`, `stuck`); the first two give their slots back at once, the blocking
//! one keeps only its own slot until its thread comes free (its thread is replaced
//! meanwhile), and ordinary jobs keep completing in the other slots.

use std::time::Duration;

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
        // One thread per bad job: the panicking one's hook prints a backtrace, which in a
        // debug build on a loaded machine holds its thread for seconds; the three must
        // start together whatever the host's CPU count.
        .handler_threads(3)
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
    // The panicking job gets a long timeout: its panic hook (a backtrace printed under
    // RUST_BACKTRACE on a loaded machine) can hold its thread inside that poll past a
    // short timeout, which the engine rightly reports as a stuck thread.
    let bad = bad.into_iter().map(|p| {
        let t = if p.tag == "panic" {
            Duration::from_secs(60)
        } else {
            timeout
        };
        Enqueue::new(p).priority(0).max_attempts(1).timeout(t)
    });
    let bad_ids = engine.enqueue_many(bad).await.unwrap();
    let first = events.take(3, Duration::from_secs(15)).await;
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
    let s = wait_stats(
        &engine,
        "only the stuck run holding a slot",
        Duration::from_secs(2),
        |s| s.lanes[0].running == 1 && s.lanes[0].stuck == 1,
    )
    .await;
    assert_eq!(s.lanes[0].concurrency, 3);
    assert_eq!(s.handlers.stuck_threads, 1, "{s:?}");
    assert_eq!(
        s.handlers.usable_threads, s.handlers.threads,
        "the stuck thread is replaced: {s:?}"
    );
    metric(
        "handlers",
        "2 of 3 slots free again after the bad handlers started",
        blocked_at.elapsed(),
    );
    assert!(
        blocked_at.elapsed() < block,
        "the other slots came back while the handler was still blocking"
    );

    for (id, cause) in bad_ids.iter().zip(["panic", "timeout", "stuck"]) {
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

    // Once the blocking handler returns (its late outcome is ignored), its thread and
    // its slot come back, and the engine runs work in every slot.
    let s = wait_stats(
        &engine,
        "the stuck thread free again",
        block + Duration::from_secs(3),
        |s| s.lanes[0].running == 0 && s.handlers.stuck_threads == 0,
    )
    .await;
    assert_eq!(s.lanes[0].stuck, 0);
    metric(
        "handlers",
        "the blocked thread held its slot for (block 4 s)",
        blocked_at.elapsed(),
    );
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

//! Priorities and lanes: exact claim order within a lane, and reserved lane capacity.

use std::time::{Duration, Instant, SystemTime};

use pglane::{Enqueue, Lane};

use crate::support::*;

/// With one slot, jobs start in exactly (priority, run_at, id) order, whatever order they
/// were enqueued in.
#[actix_rt::test]
async fn one_lane_starts_jobs_in_priority_run_at_id_order() {
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
    // Paused right after start: even a claim already in flight then takes nothing
    // enqueued below (pause answers once it has returned).
    engine.pause("only").await.unwrap();

    // Priorities 1..=50 in shuffled order, one job each.
    let mut priorities: Vec<i16> = (1..=50).collect();
    fastrand::shuffle(&mut priorities);
    for p in &priorities {
        engine
            .enqueue(Enqueue::new(Probe::new(format!("p{p}"))).priority(*p))
            .await
            .unwrap();
    }
    // Equal priorities (7) with different run_at, all already due, enqueued newest
    // first: run_at must order them, not their ids.
    let now = SystemTime::now();
    for back in [1u64, 3, 2, 5, 4] {
        engine
            .enqueue(
                Enqueue::new(Probe::new(format!("ago{back}")))
                    .priority(7)
                    .run_at(now - Duration::from_secs(back * 60)),
            )
            .await
            .unwrap();
    }
    // Equal priority and equal run_at: the id breaks the tie.
    let at = now - Duration::from_secs(3600);
    let same: Vec<_> = (0..5)
        .map(|i| {
            Enqueue::new(Probe::new(format!("same{i}")))
                .priority(20)
                .run_at(at)
        })
        .collect();
    let same_ids = engine.enqueue_many(same).await.unwrap();
    assert!(same_ids.windows(2).all(|w| w[0] < w[1]));

    assert_eq!(db.count("state = 'running'").await, 0, "the lane is paused");
    let expected: Vec<i64> = db
        .query(
            "SELECT id FROM {schema}.jobs WHERE state = 'available' \
             ORDER BY priority, run_at, id",
        )
        .await
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert_eq!(expected.len(), 60);

    engine.resume("only").await.unwrap();
    let started = events.take(60, Duration::from_secs(30)).await;
    let order: Vec<i64> = started.iter().map(|e| e.id).collect();
    assert_eq!(
        order, expected,
        "start order must be (priority, run_at, id)"
    );
    // And in words: priorities never go down, the priority-7 group is oldest first,
    // and the tie at priority 20 is broken by id.
    assert!(started.windows(2).all(|w| w[0].priority <= w[1].priority));
    let tags: Vec<&str> = started.iter().map(|e| e.tag.as_str()).collect();
    let group7: Vec<&str> = tags
        .iter()
        .copied()
        .filter(|t| t.starts_with("ago") || *t == "p7")
        .collect();
    assert_eq!(group7, ["ago5", "ago4", "ago3", "ago2", "ago1", "p7"]);
    let group20: Vec<&str> = tags
        .iter()
        .copied()
        .filter(|t| t.starts_with("same"))
        .collect();
    assert_eq!(group20, ["same0", "same1", "same2", "same3", "same4"]);
    let pos = |t: &str| tags.iter().position(|x| *x == t).unwrap();
    assert!(pos("same4") < pos("p20"), "an older run_at goes first");

    db.wait_count("state = 'completed'", 60, Duration::from_secs(10))
        .await;
    engine.shutdown().await.unwrap();
    db.cleanup().await;
}

/// A flooded bulk lane never delays an urgent job: the urgent lane's reserved slots take
/// it at once, while every bulk slot is busy for seconds. Neither lane exceeds its own
/// slots, and no lane runs jobs less urgent than its range.
#[actix_rt::test]
async fn urgent_lane_keeps_its_slots_while_bulk_is_flooded() {
    let db = TestDb::new().await;
    let mut events = Events::new();
    let gauge = Gauge::default();
    let engine = db
        .engine()
        .lane(Lane::new("urgent").priorities(0..=9).concurrency(2))
        .lane(Lane::new("bulk").priorities(10..).concurrency(2))
        .register::<Probe>()
        .data(events.sender())
        .data(gauge.clone())
        .start()
        .await
        .unwrap();

    const BULK_MS: u64 = 8000;
    let flood = (0..300).map(|i| {
        Enqueue::new(Probe::behave(format!("bulk{i}"), Behave::SleepMs(BULK_MS)))
            .priority(100 + i % 50)
    });
    engine.enqueue_many(flood).await.unwrap();
    let first_bulk = events.take(2, Duration::from_secs(10)).await;
    assert!(first_bulk.iter().all(|e| e.lane == "bulk"));
    let bulk_busy_since = first_bulk[1].at;

    // Mid-flood, an urgent job: the urgent lane has free slots and takes it in one claim.
    let enqueued = Instant::now();
    let urgent_id = engine
        .enqueue(Enqueue::new(Probe::new("urgent")).priority(5))
        .await
        .unwrap();
    let e = events.next(Duration::from_secs(3)).await;
    assert_eq!((e.id, e.lane.as_str()), (urgent_id, "urgent"));
    let waited = e.at - enqueued;
    assert!(
        waited < Duration::from_millis(1500),
        "urgent job waited {waited:?}"
    );
    assert!(
        e.at < bulk_busy_since + Duration::from_millis(BULK_MS),
        "the urgent job started before any bulk slot could free up"
    );

    // More urgent work than the urgent lane has slots: it runs two at a time, and the
    // full bulk lane never takes any of it.
    let urgent = (0..6).map(|i| {
        Enqueue::new(Probe::behave(format!("u{i}"), Behave::SleepMs(300))).priority(i % 10)
    });
    engine.enqueue_many(urgent).await.unwrap();
    let urgent_events = events.take(6, Duration::from_secs(10)).await;
    assert!(urgent_events
        .iter()
        .all(|e| e.lane == "urgent" && e.priority <= 9));
    let s = engine.stats().await.unwrap();
    assert!(s.lanes[0].running <= 2 && s.lanes[1].running <= 2, "{s:?}");
    assert_eq!(
        gauge.get("bulk").1,
        2,
        "bulk ran exactly its 2 slots at once"
    );
    assert!(
        gauge.get("urgent").1 <= 2,
        "urgent never exceeds its 2 slots"
    );
    assert_eq!(
        db.count("state = 'running' AND priority >= 10").await,
        2,
        "still only two bulk jobs running: no bulk slot freed meanwhile"
    );

    // Once the urgent lane is idle it may help with more urgent work only: it never
    // claims a bulk job (priority >= 10), however long the bulk backlog.
    db.wait_count(
        "state = 'completed' AND priority <= 9",
        7,
        Duration::from_secs(10),
    )
    .await;
    let later = events.all_within(Duration::from_millis(600)).await;
    assert!(
        later.iter().all(|e| e.lane == "bulk"),
        "no bulk job may start in the idle urgent lane: {later:?}"
    );
    assert_eq!(gauge.get("urgent").0, 0);

    let report = engine
        .shutdown_within(Duration::from_millis(100))
        .await
        .unwrap();
    assert_eq!(report.released, 2);
    db.cleanup().await;
}

/// A lane with free slots helps with more urgent work when its own lane is busy
/// (work-conserving, the default); a strict lane never does.
#[actix_rt::test]
async fn idle_lane_borrows_more_urgent_work_unless_strict() {
    let db = TestDb::new().await;
    let mut events = Events::new();
    let engine = db
        .engine()
        .lane(Lane::new("urgent").priorities(0..=9).concurrency(1))
        .lane(Lane::new("bulk").priorities(10..).concurrency(2))
        .register::<Probe>()
        .data(events.sender())
        .start()
        .await
        .unwrap();
    engine.pause("urgent").await.unwrap();
    let id = engine
        .enqueue(Enqueue::new(Probe::new("borrowed")).priority(3))
        .await
        .unwrap();
    let e = events.next(Duration::from_secs(5)).await;
    assert_eq!((e.id, e.lane.as_str(), e.priority), (id, "bulk", 3));
    db.wait_count("state = 'completed'", 1, Duration::from_secs(5))
        .await;
    engine.shutdown().await.unwrap();

    let strict = db
        .engine()
        .lane(Lane::new("urgent").priorities(0..=9).concurrency(1))
        .lane(
            Lane::new("bulk")
                .priorities(10..)
                .concurrency(2)
                .work_conserving(false),
        )
        .register::<Probe>()
        .data(events.sender())
        .start()
        .await
        .unwrap();
    strict.pause("urgent").await.unwrap();
    let id = strict
        .enqueue(Enqueue::new(Probe::new("kept")).priority(3))
        .await
        .unwrap();
    assert!(
        events.none_within(Duration::from_millis(600)).await,
        "a strict bulk lane must not take priority 3"
    );
    strict.resume("urgent").await.unwrap();
    let e = events.next(Duration::from_secs(5)).await;
    assert_eq!((e.id, e.lane.as_str()), (id, "urgent"));
    db.wait_count("state = 'completed'", 2, Duration::from_secs(5))
        .await;
    strict.shutdown().await.unwrap();
    db.cleanup().await;
}

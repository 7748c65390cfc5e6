//! Run-time control and statistics: pause, resume, concurrency changes, unknown lanes,
//! and what `stats()` reports.

use std::time::Duration;

use pglane::{Enqueue, Error, Lane, ListenerMode};

use crate::support::*;

/// Paused lanes claim nothing; resume claims at once (polling is 30 s here, so only the
/// resume can explain a prompt start).
#[actix_rt::test]
async fn pause_stops_claims_and_resume_claims_at_once() {
    let db = TestDb::new().await;
    let mut events = Events::new();
    let engine = db
        .engine()
        .poll_interval(Duration::from_secs(30))
        .poll_interval_without_listener(Duration::from_secs(30))
        .lane(Lane::new("only").concurrency(4))
        .register::<Probe>()
        .data(events.sender())
        .start()
        .await
        .unwrap();
    wait_listening(&engine).await;
    engine.pause("only").await.unwrap();
    assert!(engine.stats().await.unwrap().lanes[0].paused);

    let jobs = (0..3).map(|i| Enqueue::new(Probe::new(format!("p{i}"))));
    engine.enqueue_many(jobs).await.unwrap();
    // Via SQL too, so a NOTIFY arrives while paused.
    db.query("SELECT {schema}.enqueue('probe', '{\"tag\": \"sql\", \"behave\": \"Succeed\"}')")
        .await;
    assert!(
        events.none_within(Duration::from_millis(800)).await,
        "a paused lane must not claim"
    );
    assert_eq!(db.count("state = 'available' AND attempt = 0").await, 4);

    engine.resume("only").await.unwrap();
    events.take(4, Duration::from_secs(3)).await;
    db.wait_count("state = 'completed'", 4, Duration::from_secs(5))
        .await;
    assert!(!engine.stats().await.unwrap().lanes[0].paused);

    engine.shutdown().await.unwrap();
    db.cleanup().await;
}

/// Regression: `pause` right after `start` used to race the startup claim. That claim,
/// already on its way to the database, could take a job enqueued after `pause` had
/// returned and start it in the paused lane (about 1 run in 10). Now `pause` answers only
/// once the claim in flight has returned, and a claim that returns to a paused lane hands
/// its jobs back.
#[actix_rt::test]
async fn pause_right_after_start_lets_nothing_start() {
    let db = TestDb::new().await;
    let mut events = Events::new();
    for round in 0..8 {
        let engine = db
            .engine()
            .lane(Lane::new("only").concurrency(4))
            .register::<Probe>()
            .data(events.sender())
            .start()
            .await
            .unwrap();
        engine.pause("only").await.unwrap();
        engine
            .enqueue(Enqueue::new(Probe::new(format!("r{round}"))))
            .await
            .unwrap();
        let started = events.all_within(Duration::from_millis(150)).await;
        assert!(started.is_empty(), "round {round}: started {started:?}");
        engine
            .shutdown_within(Duration::from_millis(10))
            .await
            .unwrap();
    }
    // Every job (some taken back by a startup claim meanwhile) waits, attempts intact.
    db.wait_count(
        "state = 'available' AND attempt = 0",
        8,
        Duration::from_secs(5),
    )
    .await;
    db.cleanup().await;
}

/// Raising a lane's concurrency runs more at once right away; lowering it lets running
/// jobs finish and then holds the lane at the new limit.
#[actix_rt::test]
async fn set_concurrency_changes_how_many_run_at_once() {
    let db = TestDb::new().await;
    let gauge = Gauge::default();
    let engine = db
        .engine()
        .lane(Lane::new("only").concurrency(1))
        .register::<Probe>()
        .data(gauge.clone())
        .start()
        .await
        .unwrap();
    let jobs = (0..40).map(|i| Enqueue::new(Probe::behave(format!("s{i}"), Behave::SleepMs(300))));
    engine.enqueue_many(jobs).await.unwrap();

    let at_once = |n: u32| {
        let gauge = gauge.clone();
        move || {
            let g = gauge.clone();
            async move { g.get("only").0 == n }
        }
    };
    wait_for("one job running", Duration::from_secs(5), at_once(1)).await;
    assert_eq!(gauge.get("only").1, 1, "one slot: one at a time");

    engine.set_concurrency("only", 4).await.unwrap();
    wait_for("four jobs running", Duration::from_secs(5), at_once(4)).await;
    let s = engine.stats().await.unwrap();
    assert_eq!(s.lanes[0].concurrency, 4);
    assert!(s.lanes[0].running <= 4);
    assert_eq!(gauge.get("only").1, 4, "never more than four");

    engine.set_concurrency("only", 2).await.unwrap();
    wait_for(
        "the lane under its new limit",
        Duration::from_secs(5),
        || {
            let g = gauge.clone();
            async move { g.get("only").0 <= 2 }
        },
    )
    .await;
    gauge.reset_peak("only");
    // Several more jobs start and finish at the new limit.
    let done_before = db.count("state = 'completed'").await;
    // Completions land in batches, so wait for "at least", not an exact count.
    wait_for("six more jobs done", Duration::from_secs(10), || async {
        db.count("state = 'completed'").await >= done_before + 6
    })
    .await;
    assert!(gauge.get("only").1 <= 2, "peak {:?}", gauge.get("only"));
    wait_stats(&engine, "two running", Duration::from_secs(5), |s| {
        s.lanes[0].running == 2 && s.lanes[0].concurrency == 2
    })
    .await;

    let released = engine
        .shutdown_within(Duration::from_millis(50))
        .await
        .unwrap()
        .released;
    assert!(released <= 2);
    db.cleanup().await;
}

#[actix_rt::test]
async fn unknown_lanes_and_zero_slots_are_errors() {
    let db = TestDb::new().await;
    let engine = db
        .engine()
        .lane(Lane::new("only"))
        .register::<Probe>()
        .start()
        .await
        .unwrap();
    assert!(matches!(engine.pause("nope").await, Err(Error::UnknownLane(l)) if l == "nope"));
    assert!(matches!(
        engine.resume("nope").await,
        Err(Error::UnknownLane(_))
    ));
    assert!(matches!(
        engine.set_concurrency("nope", 3).await,
        Err(Error::UnknownLane(_))
    ));
    let via_message = engine
        .supervisor()
        .send(pglane::Pause("nope".into()))
        .await
        .unwrap();
    assert!(matches!(via_message, Err(Error::UnknownLane(_))));
    assert!(matches!(
        engine.set_concurrency("only", 0).await,
        Err(Error::InvalidConfig(_))
    ));
    let s = engine.stats().await.unwrap();
    assert_eq!((s.lanes[0].concurrency, s.lanes[0].paused), (10, false));
    engine.shutdown().await.unwrap();
    db.cleanup().await;
}

/// Stats: waiting counts per lane, counts per state, the listener's mode, and kinds no
/// one here can run (which are never claimed).
#[actix_rt::test]
async fn stats_report_lanes_states_listener_and_unregistered_kinds() {
    let db = TestDb::new().await;
    let mut events = Events::new();
    let engine = db
        .engine()
        .lane(Lane::new("urgent").priorities(0..=9).concurrency(2))
        .lane(Lane::new("bulk").priorities(10..).concurrency(2))
        .register::<Probe>()
        .data(events.sender())
        .start()
        .await
        .unwrap();
    let s = wait_stats(&engine, "the listener", Duration::from_secs(10), |s| {
        s.listener.mode == ListenerMode::Notify
    })
    .await;
    assert_eq!(s.listener.connects, 1);
    assert!(s.listener.last_error.is_none());
    engine.pause("urgent").await.unwrap();
    engine.pause("bulk").await.unwrap();

    let urgent = (0..3).map(|i| Enqueue::new(Probe::new(format!("u{i}"))).priority(1));
    let bulk = (0..5).map(|i| Enqueue::new(Probe::new(format!("b{i}"))).priority(50));
    let later = (0..2).map(|i| {
        Enqueue::new(Probe::new(format!("l{i}")))
            .priority(1)
            .delay(Duration::from_secs(3600))
    });
    engine
        .enqueue_many(urgent.chain(bulk).chain(later))
        .await
        .unwrap();
    db.query("SELECT {schema}.enqueue('mystery', '{}', priority => 60) FROM generate_series(1, 2)")
        .await;
    db.query("SELECT {schema}.enqueue('probe', '{}', queue => 'elsewhere')")
        .await;

    let s = engine.stats().await.unwrap();
    let names: Vec<&str> = s.lanes.iter().map(|l| l.name.as_str()).collect();
    assert_eq!(names, ["urgent", "bulk"]);
    assert_eq!(s.lanes[0].priorities, (0, 9));
    assert_eq!(s.lanes[1].priorities, (10, 32767));
    assert_eq!(s.lanes[0].waiting, 3, "due urgent jobs: {s:?}");
    assert_eq!(
        s.lanes[1].waiting, 7,
        "due bulk-range jobs, unknown kinds included"
    );
    assert!(s.lanes[0].oldest_wait.is_some());
    assert!(s.lanes.iter().all(|l| l.paused && l.running == 0));
    let st = s.states;
    assert_eq!(
        (st.available, st.scheduled, st.running, st.completed),
        (10, 2, 0, 0),
        "{st:?}; other queues are not counted"
    );
    assert_eq!(s.unregistered_kinds, [("mystery".to_string(), 2)]);
    assert_eq!(s.started, 0);

    engine.resume("urgent").await.unwrap();
    engine.resume("bulk").await.unwrap();
    let ran = events.take(8, Duration::from_secs(10)).await;
    assert!(ran
        .iter()
        .all(|e| e.tag.starts_with('u') || e.tag.starts_with('b')));
    db.wait_count(
        "state = 'completed' AND kind = 'probe'",
        8,
        Duration::from_secs(10),
    )
    .await;
    let s = wait_stats(&engine, "nothing running", Duration::from_secs(5), |s| {
        s.states.running == 0 && s.lanes.iter().all(|l| l.running == 0)
    })
    .await;
    assert_eq!((s.states.completed, s.states.available), (8, 2));
    assert_eq!(s.started, 8);
    assert_eq!(s.lanes[0].started + s.lanes[1].started, 8);
    // The unknown kind is never claimed, however many polls pass.
    assert!(events
        .all_within(Duration::from_millis(600))
        .await
        .is_empty());
    assert_eq!(
        db.count("kind = 'mystery' AND state = 'available' AND attempt = 0")
            .await,
        2
    );
    assert_eq!(
        engine.stats().await.unwrap().unregistered_kinds,
        [("mystery".to_string(), 2)]
    );

    engine.shutdown().await.unwrap();
    db.cleanup().await;
}

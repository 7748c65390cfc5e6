//! Hostile input the core suite (tests/it/bad_input.rs, lifecycle.rs, tuning.rs) does
//! not cover: floods of spoofed and garbage notifications on the engine's channel, and
//! a call timeout equal to the lease.
//!
//! Anyone who can connect may NOTIFY on the channel. A payload is a hint at most: junk is
//! rate-limited, and even valid-looking hints cannot make the engine claim more than one
//! claim per lane at a time. Claims are counted exactly with `pg_stat_statements`, on a
//! private server that preloads it.

use std::time::{Duration, Instant};

use pglane::{Engine, Error};

use super::*;
use crate::support::*;

/// Calls of the engine's claim statement so far.
async fn claims(client: &Client) -> i64 {
    client
        .query_one(
            "SELECT coalesce(sum(calls), 0)::bigint FROM pg_stat_statements \
             WHERE query LIKE '%FOR UPDATE SKIP LOCKED%' AND query LIKE '%lease_token%'",
            &[],
        )
        .await
        .unwrap()
        .get(0)
}

#[actix_rt::test]
async fn notification_floods_cause_no_claim_storm() {
    let pg = private_server(&["shared_preload_libraries = 'pg_stat_statements'"]).await;
    let db = TestDb::at(&pg.url()).await;
    db.client
        .batch_execute("CREATE EXTENSION pg_stat_statements")
        .await
        .unwrap();
    let id = worker_id("flood");
    let tally = Tally::default();
    // Polls are rare, so claims come from hints only.
    let engine = fault_engine(&db, &id, &tally)
        .poll_interval(Duration::from_secs(30))
        .poll_interval_without_listener(Duration::from_secs(30))
        .start()
        .await
        .unwrap();
    wait_listening(&engine).await;
    let channel = pglane::channel_for(&db.schema).unwrap();
    let spoofer = connect(&db.url).await;

    // A real job enqueued after a flood is woken by its own NOTIFY, which arrives after
    // every flood notification: once it has started, the flood has been dealt with.
    let real_job = || async {
        let job: i64 = db.query("SELECT {schema}.enqueue('work', '{}')").await[0].get(0);
        let at = Instant::now();
        wait_for("the real job to start", Duration::from_secs(2), || {
            let started = tally.started(job).is_some();
            async move { started }
        })
        .await;
        tally.started(job).unwrap().saturating_duration_since(at)
    };

    // 10,000 junk payloads, in ten transactions; a few special shapes among them.
    let before = claims(&db.client).await;
    let flood_started = Instant::now();
    for round in 0..10 {
        spoofer
            .query(
                "SELECT pg_notify($1, CASE g % 5 \
                     WHEN 0 THEN 'garbage ' || g || ' ' || $2::text \
                     WHEN 1 THEN '-' || g \
                     WHEN 2 THEN (100000 + g)::text \
                     WHEN 3 THEN 'pglane-ping:' || g \
                     ELSE repeat('x', 7000) || g END) \
                 FROM generate_series(1, 1000) g",
                &[&channel, &round.to_string()],
            )
            .await
            .unwrap();
    }
    let latency = real_job().await;
    let junk_claims = claims(&db.client).await - before;
    println!(
        "garbage flood: 10000 notifications sent in {:?}",
        flood_started.elapsed()
    );
    metric(
        "bad_input",
        "real job start right after 10,000 junk notifications",
        latency,
    );

    // 10,000 valid-looking hints (distinct priorities).
    let before = claims(&db.client).await;
    for round in 0..10 {
        spoofer
            .query(
                "SELECT pg_notify($1, (g + $2::int * 1000)::text) FROM generate_series(0, 999) g",
                &[&channel, &round],
            )
            .await
            .unwrap();
    }
    let latency = real_job().await;
    let spoof_claims = claims(&db.client).await - before;
    metric(
        "bad_input",
        "real job start right after 10,000 spoofed hints",
        latency,
    );
    println!(
        "FAULT-METRIC bad_input: claims for 10000 junk / 10000 valid-looking hints (+1 real job each) = {junk_claims} / {spoof_claims}"
    );
    assert!(
        junk_claims < 200,
        "{junk_claims} claims for 10,000 junk notifications"
    );
    assert!(
        spoof_claims < 1000,
        "{spoof_claims} claims for 10,000 spoofed hints"
    );
    let s = engine.stats().await.unwrap();
    assert!(
        s.database.available && s.listener.mode == pglane::ListenerMode::Notify,
        "{s:?}"
    );
    assert_eq!(
        s.listener.connects, 1,
        "the flood did not break the listener"
    );
    engine.shutdown().await.unwrap();
}

#[actix_rt::test]
async fn call_timeout_equal_to_the_lease_is_invalid() {
    for call in [Duration::from_secs(5), Duration::from_secs(6)] {
        let r = Engine::builder(database_url())
            .register::<Work>()
            .lease(Duration::from_secs(5))
            .call_timeout(call)
            .start()
            .await;
        match r {
            Err(Error::InvalidConfig(msg)) => assert!(msg.contains("call_timeout"), "{msg}"),
            Err(e) => panic!("expected InvalidConfig, got {e:?}"),
            Ok(_) => panic!("call_timeout {call:?} with a 5 s lease was accepted"),
        }
    }
}

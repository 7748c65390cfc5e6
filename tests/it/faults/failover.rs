//! A real failover on private servers: a primary with a synchronous streaming standby
//! (so every acknowledged commit survives), and an engine on the two-host URL with
//! `target_session_attrs=read-write`. Under load the primary is stopped (`immediate`)
//! and the standby promoted: the engine moves to the new primary, listener included,
//! within 5 s; nothing acknowledged is lost and nothing is completed twice. No job runs
//! twice without a rescue, except one whose claim (committed without waiting for its
//! flush) was lost with the old primary: those runs are read exactly from what the
//! standby had replayed before its promotion.
//!
//! Then the old primary rejoins as a standby of the new one, and a second engine is
//! pointed at it alone. It must refuse to pretend: it starts, reports the database
//! unavailable because it is not writable, stays poll-only, and probes without a storm
//! of connection attempts.

use std::time::{Duration, Instant};

use pglane::ListenerMode;

use super::*;
use crate::support::*;

#[actix_rt::test]
async fn failover_to_a_promoted_standby_and_refusal_of_a_standby() {
    let primary = Arc::new(private_server(&["log_connections = on"]).await);
    let mut db = TestDb::at(&primary.url()).await;
    let p = primary.clone();
    let standby = Arc::new(
        blocking(move || {
            let s = TempPostgres::standby_of(&p)?;
            s.start_server()?;
            Ok(s)
        })
        .await,
    );
    for sql in [
        "ALTER SYSTEM SET synchronous_standby_names = '*'",
        "SELECT pg_reload_conf()",
    ] {
        db.client.batch_execute(sql).await.unwrap();
    }
    wait_for(
        "the standby to be synchronous",
        Duration::from_secs(20),
        || {
            let db = &db;
            async move {
                let rows = db
                    .client
                    .query(
                        "SELECT 1 FROM pg_stat_replication WHERE sync_state = 'sync'",
                        &[],
                    )
                    .await
                    .unwrap();
                !rows.is_empty()
            }
        },
    )
    .await;

    db.url = format!(
        "postgres://postgres@127.0.0.1:{},127.0.0.1:{}/postgres?target_session_attrs=read-write",
        primary.port(),
        standby.port()
    );
    let UnderLoad {
        id,
        tally,
        engine,
        feeder,
    } = under_load(
        &db,
        "failover",
        r#"{"sleep_ms": 300}"#,
        1,
        Duration::from_millis(30),
        20,
    )
    .await;

    // A worker that dies with the old primary: it holds two jobs (claimed with the
    // engine's own statement) that only a rescue on the new primary can free. They are
    // enqueued and claimed in one transaction: under load the engine may drain the
    // feeder's jobs as fast as they come, and must not take these first.
    let claim = render_sql(include_str!("../../../src/store/sql/claim.sql"), &db.schema);
    let enqueue_two = format!(
        "SELECT \"{}\".enqueue('work', '{{\"sleep_ms\": 300}}'::jsonb) FROM generate_series(1, 2)",
        db.schema
    );
    let tx = db.client.transaction().await.unwrap();
    tx.execute(&enqueue_two, &[]).await.unwrap();
    let ghost = tx
        .query(
            &claim,
            &[
                &0i16,
                &i16::MAX,
                &"default",
                &vec!["work"],
                &2i64,
                &4242i64,
                &2000.0f64,
                &"ghost",
            ],
        )
        .await
        .unwrap();
    tx.commit().await.unwrap();
    assert_eq!(ghost.len(), 2, "the ghost holds two jobs");
    let ghost_ids: Vec<i64> = ghost.iter().map(|r| r.get(0)).collect();
    // The claim commits without waiting for its WAL flush (by design: a lost claim only
    // means a rerun), so make sure the standby has it before the primary dies, or the
    // ghost's jobs would simply never have been claimed on the new primary.
    let lsn: String = db
        .client
        .query_one("SELECT pg_current_wal_insert_lsn()::text", &[])
        .await
        .unwrap()
        .get(0);
    let replica = connect_retry(&standby.url(), Duration::from_secs(5)).await;
    wait_for(
        "the standby to replay the ghost's claim",
        Duration::from_secs(10),
        || {
            let (c, lsn) = (&replica, lsn.clone());
            async move {
                c.query_one(
                    "SELECT pg_last_wal_replay_lsn() >= $1::text::pg_lsn",
                    &[&lsn],
                )
                .await
                .map(|r| r.get::<_, bool>(0))
                .unwrap_or(false)
            }
        },
    )
    .await;
    drop(replica);

    let p = primary.clone();
    blocking(move || p.stop_server("immediate")).await;
    let in_flight = tally.in_flight();
    // Until the promotion no server is writable, so every run the engine started so far
    // was claimed on the old primary. Under load a handler can start well after its claim
    // returned (100 ms was seen): wait until each has entered its handler, so that the
    // runs recorded now are exactly the old primary's.
    let started = engine.stats().await.unwrap().started;
    wait_for(
        "the runs started on the old primary to enter their handlers",
        Duration::from_secs(10),
        || {
            let n = tally.runs().len() as u64;
            async move { n >= started }
        },
    )
    .await;
    let on_old_primary = tally.runs();
    let replayed = replayed_at_stop(&standby, &db.schema).await;
    let s = standby.clone();
    blocking(move || s.promote()).await;
    let promoted = Instant::now();
    let new_primary = connect_retry(&standby.url(), Duration::from_secs(5)).await;
    let since = server_now(&new_primary).await;
    wait_for(
        "a listener on the new primary",
        Duration::from_secs(5),
        || {
            let (c, id) = (&new_primary, &id);
            async move { !backends(c, id, &["listener"]).await.is_empty() }
        },
    )
    .await;
    metric(
        "failover",
        "listener on the new primary after promotion",
        promoted.elapsed(),
    );
    let resumed = wait_some("work on the new primary", Duration::from_secs(5), || {
        nth_completion_after(&new_primary, &db.schema, since, 3)
    })
    .await;
    metric(
        "failover",
        "work resumed on the new primary (3 jobs claimed there done)",
        resumed,
    );
    wait_stats(
        &engine,
        "the engine settled on the new primary",
        Duration::from_secs(5),
        |s| s.database.available && s.listener.mode == ListenerMode::Notify,
    )
    .await;

    let (acked, errors) = feeder.stop().await;
    drained(&new_primary, &db.schema, Duration::from_secs(30)).await;
    // Outcomes and enqueues commit synchronously, but claims do not wait for their WAL
    // flush: the old primary's last claims may never have reached the standby. A run
    // claimed there is then lost with it: the new primary starts with its job available
    // (or without it, if its enqueue was lost too), and the job runs once more there,
    // without a rescue. Exactly those runs are discounted: the old primary's runs whose
    // job the standby had, once it replayed all it received, neither finished nor
    // running. Every other job runs once (or after a rescue), as the audit checks.
    let mut executions = tally.executions();
    let lost: Vec<i64> = on_old_primary
        .iter()
        .filter(|r| replayed.lost(r.id))
        .map(|r| r.id)
        .collect();
    for id in &lost {
        if let Some(ran) = executions.get_mut(id) {
            *ran -= 1;
        }
    }
    println!(
        "failover: {} runs on the old primary whose claim never reached the standby (jobs {lost:?}), run again on the new one",
        lost.len()
    );
    let audit = audit(&new_primary, &db.schema, &acked, &executions).await;
    println!(
        "failover: {audit:?}, {} acknowledged, {errors} enqueue calls failed, {in_flight} runs in flight at the stop",
        acked.len()
    );
    assert_eq!(
        audit.reruns, 0,
        "the engine survived: no run of it was repeated"
    );
    let q = format!(
        "SELECT count(*) FROM \"{}\".jobs_finished WHERE id = ANY($1) AND rescues = 1 AND worker_id <> 'ghost'",
        db.schema
    );
    let rescued: i64 = new_primary
        .query_one(&q, &[&ghost_ids])
        .await
        .unwrap()
        .get(0);
    assert_eq!(
        rescued, 2,
        "the dead worker's jobs were rescued on the new primary"
    );

    // The old primary comes back as a standby of the new one.
    let (p, s) = (primary.clone(), standby.clone());
    blocking(move || {
        p.rebuild_as_standby_of(&s)?;
        p.start_server()
    })
    .await;
    let old = connect_retry(&primary.url(), Duration::from_secs(10)).await;
    let in_recovery: bool = old
        .query_one("SELECT pg_is_in_recovery()", &[])
        .await
        .unwrap()
        .get(0);
    assert!(in_recovery);

    let id2 = worker_id("demoted");
    let started = Instant::now();
    let demoted = pglane::Engine::builder(primary.url())
        .schema(db.schema.clone())
        .worker_id(&id2)
        .register::<Work>()
        .data(Tally::default())
        .lease(Duration::from_secs(5))
        .call_timeout(Duration::from_secs(3))
        .start()
        .await
        .expect("an engine starts on a standby, and waits");
    metric("failover", "engine start on a standby", started.elapsed());
    let s = wait_stats(
        &demoted,
        "the standby reported unavailable",
        Duration::from_secs(10),
        |s| !s.database.available,
    )
    .await;
    let reason = s.database.last_error.clone().unwrap_or_default();
    println!(
        "on the standby: {:?}, listener {:?}",
        s.database, s.listener
    );
    assert!(
        reason.contains("does not allow writes")
            || reason.contains("read-only")
            || reason.contains("recovery"),
        "the reason says the server is not writable: {reason:?}"
    );
    assert_eq!(s.listener.mode, ListenerMode::PollOnly);
    assert!(!s.database.schema_verified);

    // No storm: count the connections it opens on the standby over a window.
    let count = |log: &str| {
        log.lines()
            .filter(|l| l.contains("connection authorized") && l.contains(&id2))
            .count()
    };
    let before = count(&primary.log());
    let window = Duration::from_secs(6);
    tokio::time::sleep(window).await;
    let attempts = count(&primary.log()) - before;
    println!(
        "FAULT-METRIC failover: connection attempts on the standby in {window:?} = {attempts}"
    );
    assert!(
        attempts <= 8,
        "{attempts} connection attempts in {window:?}"
    );
    let s = demoted.stats().await.unwrap();
    assert!(
        !s.database.available && s.listener.mode == ListenerMode::PollOnly,
        "{s:?}"
    );
    assert_eq!(s.started, 0);

    demoted.shutdown().await.unwrap();
    engine.shutdown().await.unwrap();
}

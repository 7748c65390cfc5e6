//! Flows (issue 10, part 4) in one process: bad flows are refused with a typed error and
//! write nothing, through Rust and SQL alike; a 10,000-deep chain is accepted and
//! cancelled as one subtree; waiting jobs are counted apart; a flow inside the caller's
//! transaction exists only if it commits.

use std::time::{Duration, Instant};

use pglane::{Enqueue, Error, Flow, FlowJob};

use crate::support::*;

fn probe(tag: &str) -> Enqueue<Probe> {
    Enqueue::new(Probe::new(tag))
}

#[actix_rt::test]
async fn bad_flows_are_refused_and_write_nothing() {
    let db = TestDb::new().await;
    let engine = db.probe_engine().await;
    engine.pause("default").await.unwrap();
    let cycle = Flow::new()
        .job(FlowJob::new("a", probe("a")).after("c"))
        .job(FlowJob::new("b", probe("b")).after("a"))
        .job(FlowJob::new("c", probe("c")).after("b"));
    let dangling = Flow::new().job(FlowJob::new("a", probe("a")).after("nope"));
    let missing_parent = Flow::new().job(FlowJob::new("a", probe("a")).after_job(i64::MAX));
    let bad_job = Flow::new().job(FlowJob::new("a", probe("a").priority(-1)));
    let twice = Flow::new()
        .job(FlowJob::new("a", probe("a")))
        .job(FlowJob::new("a", probe("b")));
    let cases = [
        ("cycle", cycle, "cycle"),
        ("dangling", dangling, "not in the flow"),
        ("missing parent", missing_parent, "does not exist"),
        ("bad job", bad_job, "priority"),
        ("duplicate ref", twice, "more than one"),
        ("empty", Flow::new(), "at least one"),
    ];
    for (name, flow, needle) in cases {
        match engine.enqueue_flow(flow).await {
            Err(Error::InvalidFlow(m)) => assert!(m.contains(needle), "{name}: {m}"),
            other => panic!("{name}: {other:?}"),
        }
    }
    // A parent that already failed holds its would-be children off (unless they run
    // anyway).
    let failed: i64 = db
        .query(
            "WITH j AS (INSERT INTO {schema}.jobs_finished (id, kind, queue, priority, args, \
             state, attempt, max_attempts, run_at, rescues, errors, created_at) VALUES \
             (999999, 'probe', 'default', 1, '{}', 'failed', 1, 1, now(), 0, '[]', now()) \
             RETURNING id) SELECT id FROM j",
        )
        .await[0]
        .get(0);
    let after_failed = Flow::new().job(FlowJob::new("a", probe("a")).after_job(failed));
    assert!(matches!(
        engine.enqueue_flow(after_failed).await,
        Err(Error::InvalidFlow(m)) if m.contains("already ended failed")
    ));
    assert_eq!(db.count("id <> 999999").await, 0, "nothing written");

    // The SQL door refuses the same: a ref listed after its child (a cycle cannot be
    // listed otherwise), an unknown ref, a unique key.
    for (flow, needle) in [
        (
            r#"[{"ref":"a","kind":"probe","depends_on":["b"]},{"ref":"b","kind":"probe","depends_on":["a"]}]"#,
            "listed at or after it",
        ),
        (r#"[{"kind":"probe","depends_on":["x"]}]"#, "unknown ref"),
        (r#"[{"kind":"probe","unique_key":"k"}]"#, "unique_key"),
        (r#"[{"kind":"bad kind!"}]"#, "invalid kind"),
        ("[]", "non-empty"),
    ] {
        let sql = format!("SELECT \"{}\".enqueue_flow($1::text::jsonb)", db.schema);
        let e = db.client.query(&sql, &[&flow]).await.unwrap_err();
        let e = e.as_db_error().expect("a server error");
        assert_eq!(e.code().code(), "22023", "{flow}");
        assert!(e.message().contains(needle), "{flow}: {}", e.message());
    }
    assert_eq!(db.count("id <> 999999").await, 0, "nothing written");
    engine.shutdown().await.unwrap();
    db.cleanup().await;
}

/// A 10,000-deep chain, listed child-first, is ordered and enqueued; cancelling its root
/// cancels the whole chain at once, each job naming the root.
#[actix_rt::test]
async fn a_10000_deep_chain_is_enqueued_and_cancelled_as_one_subtree() {
    let db = TestDb::new().await;
    // 10,000 jobs validated one by one by enqueue() take about 2 s on an idle machine
    // (the default call timeout is 10 s; this test's engines use 3 s).
    let engine = db
        .engine()
        .lease(Duration::from_secs(60))
        .call_timeout(Duration::from_secs(30))
        .register::<Probe>()
        .data(Events::new().sender())
        .start()
        .await
        .unwrap();
    engine.pause("default").await.unwrap();
    let n = 10_000;
    let mut flow = Flow::new();
    for i in (0..n).rev() {
        let mut job = FlowJob::new(format!("j{i}"), probe("chain"));
        if i > 0 {
            job = job.after(format!("j{}", i - 1));
        }
        flow = flow.job(job);
    }
    let t = Instant::now();
    let ids = engine.enqueue_flow(flow).await.unwrap();
    println!("enqueue_flow of a {n}-deep chain: {:?}", t.elapsed());
    assert_eq!(ids.len(), n);
    let root = ids[n - 1];
    assert_eq!(db.count("state = 'waiting'").await, n as i64 - 1);
    assert_eq!(
        db.count(&format!("state = 'available' AND id = {root}"))
            .await,
        1
    );
    let stats = engine.stats().await.unwrap();
    assert_eq!(stats.states.waiting_on_parents, n as i64 - 1);
    assert_eq!(stats.states.available, 1, "waiting jobs are counted apart");

    let t = Instant::now();
    engine.cancel(root).await.unwrap();
    println!("cancelling the chain's root: {:?}", t.elapsed());
    assert_eq!(db.count("state = 'cancelled'").await, n as i64);
    let last = errors_of(&db, ids[0]).await;
    assert_eq!(last[0]["cause"], "parent");
    assert_eq!(last[0]["parent"], root);
    engine.shutdown().await.unwrap();
    db.cleanup().await;
}

/// Inside the caller's transaction: rolled back, nothing; committed, the flow runs in
/// order (through this engine's lane).
#[actix_rt::test]
async fn a_flow_in_the_callers_transaction_exists_only_if_it_commits() {
    let db = TestDb::new().await;
    let mut events = Events::new();
    let engine = db
        .engine()
        .lane(pglane::Lane::new("one").concurrency(1))
        .register::<Probe>()
        .data(events.sender())
        .start()
        .await
        .unwrap();
    let flow = || {
        Flow::new()
            .job(FlowJob::new("second", probe("second")).after("first"))
            .job(FlowJob::new("first", probe("first").priority(500)))
    };
    let mut client = connect(&db.url).await;
    let tx = client.transaction().await.unwrap();
    engine.enqueue_flow_tx(&tx, flow()).await.unwrap();
    tx.rollback().await.unwrap();
    assert_eq!(db.count("true").await, 0);

    let tx = client.transaction().await.unwrap();
    let ids = engine.enqueue_flow_tx(&tx, flow()).await.unwrap();
    tx.commit().await.unwrap();
    // Operators see the edges (`pglane list`).
    let listed = pglane::admin::list(&db.client, &db.schema, None, 10)
        .await
        .unwrap();
    let of = |id: i64| listed.iter().find(|j| j.id == id).unwrap();
    assert_eq!(
        (&of(ids[0]).parents, &of(ids[0]).children),
        (&vec![ids[1]], &vec![])
    );
    assert_eq!(of(ids[1]).children, [ids[0]]);
    let got = events.take(2, Duration::from_secs(10)).await;
    assert_eq!(
        got.iter().map(|e| e.id).collect::<Vec<_>>(),
        [ids[1], ids[0]],
        "the parent first, though less urgent"
    );
    engine.shutdown().await.unwrap();
    db.cleanup().await;
}

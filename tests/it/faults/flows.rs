//! Flows across worker processes (issue 10, part 4): a fan-out/fan-in of 1,000 jobs runs
//! in dependency order on two workers; a parent's failure cancels its subtree (naming
//! it) while a child that asked to run anyway runs; a parent rescued after its worker
//! was killed releases its children exactly once.

use std::collections::HashMap;
use std::time::{Duration, SystemTime};

use pglane::{Enqueue, Flow, FlowJob, Job, JobContext, JobError};
use serde::{Deserialize, Serialize};

use super::worker_killed::spec;
use super::*;
use crate::support::*;

/// The worker processes' job, as this process enqueues it.
#[derive(Serialize, Deserialize)]
struct Fault {}

impl Job for Fault {
    const KIND: &'static str = "fault";
    async fn run(self, _: JobContext) -> Result<(), JobError> {
        unreachable!("run by the worker processes")
    }
}

/// Each job's first execution: (started, finished), from the ledger.
async fn spans(db: &TestDb) -> HashMap<i64, (SystemTime, Option<SystemTime>)> {
    db.client
        .query(
            &format!(
                "SELECT job_id, min(started_at), min(finished_at) FROM \"{}\".ledger GROUP BY job_id",
                db.schema
            ),
            &[],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| (r.get(0), (r.get(1), r.get(2))))
        .collect()
}

async fn sql_flow(db: &TestDb, flow: &str) -> Vec<i64> {
    let sql = format!("SELECT \"{}\".enqueue_flow($1::text::jsonb)", db.schema);
    db.client.query_one(&sql, &[&flow]).await.unwrap().get(0)
}

#[actix_rt::test]
async fn fan_out_fan_in_of_1000_runs_in_dependency_order_on_two_workers() {
    let db = TestDb::new().await;
    create_ledger(&db.client, &db.schema).await;
    let a = Worker::start(&spec(&db, &worker_id("flow-a"), "normal", 4)).await;
    let b = Worker::start(&spec(&db, &worker_id("flow-b"), "normal", 4)).await;
    let engine = db.probe_engine().await;
    // Listed sink first: the flow is ordered for us.
    let mids = 998;
    let mut sink = FlowJob::new("sink", Enqueue::new(Fault {}));
    for i in 0..mids {
        sink = sink.after(format!("mid{i}"));
    }
    let mut flow = Flow::new().job(sink);
    for i in 0..mids {
        flow = flow.job(FlowJob::new(format!("mid{i}"), Enqueue::new(Fault {})).after("root"));
    }
    flow = flow.job(FlowJob::new("root", Enqueue::new(Fault {})));
    let ids = engine.enqueue_flow(flow).await.unwrap();
    assert_eq!(ids.len(), 1000);
    let (sink, root) = (ids[0], ids[999]);
    drained(&db.client, &db.schema, Duration::from_secs(60)).await;
    assert_eq!(db.count("state = 'completed'").await, 1000);

    let spans = spans(&db).await;
    let (_, root_done) = spans[&root];
    let root_done = root_done.expect("root finished");
    let (sink_start, _) = spans[&sink];
    let mut by = HashMap::new();
    for id in &ids[1..999] {
        let (start, done) = spans[id];
        assert!(
            start >= root_done,
            "mid {id} started before the root finished"
        );
        assert!(
            sink_start >= done.expect("mid finished"),
            "the sink started before mid {id} finished"
        );
    }
    for (worker,) in db
        .query("SELECT worker_id FROM {schema}.jobs_finished")
        .await
        .iter()
        .map(|r| (r.get::<_, String>(0),))
    {
        *by.entry(worker).or_insert(0) += 1;
    }
    assert_eq!(by.len(), 2, "both workers ran jobs: {by:?}");
    assert!(ledger_executions(&db.client, &db.schema)
        .await
        .values()
        .all(|n| *n == 1));
    engine.shutdown().await.unwrap();
    a.finish(Duration::from_secs(10)).await;
    b.finish(Duration::from_secs(10)).await;
    db.cleanup().await;
}

/// a -> b -> c, a -> d (run anyway); a fails for good in a worker process: b and c are
/// cancelled naming a, d runs.
#[actix_rt::test]
async fn parent_failure_cancels_the_subtree_and_run_anyway_children_run() {
    let db = TestDb::new().await;
    create_ledger(&db.client, &db.schema).await;
    let w = Worker::start(&spec(&db, &worker_id("fail-a"), "fail:5", 2)).await;
    let ids = sql_flow(
        &db,
        r#"[{"ref":"a","kind":"fault","max_attempts":1},
            {"ref":"b","kind":"fault","depends_on":["a"]},
            {"ref":"c","kind":"fault","depends_on":["b"]},
            {"ref":"d","kind":"fault","max_attempts":1,"depends_on":["a"],"run_if_parent_fails":true}]"#,
    )
    .await;
    drained(&db.client, &db.schema, Duration::from_secs(20)).await;
    let states: HashMap<i64, String> = db
        .query("SELECT id, state FROM {schema}.jobs_finished")
        .await
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect();
    assert_eq!(states[&ids[0]], "failed");
    assert_eq!(states[&ids[1]], "cancelled");
    assert_eq!(states[&ids[2]], "cancelled");
    assert_eq!(
        states[&ids[3]], "failed",
        "d ran (and failed like every job here)"
    );
    for child in [ids[1], ids[2]] {
        let e = errors_of(&db, child).await.pop().unwrap();
        assert_eq!(
            (e["cause"].as_str(), e["parent"].as_i64()),
            (Some("parent"), Some(ids[0]))
        );
    }
    let runs = ledger_executions(&db.client, &db.schema).await;
    assert_eq!(runs.get(&ids[1]), None);
    assert_eq!(runs.get(&ids[2]), None);
    assert_eq!(runs.get(&ids[3]), Some(&1));
    w.finish(Duration::from_secs(10)).await;
    db.cleanup().await;
}

/// The parent's worker is killed mid-run; another worker rescues and completes it; its
/// ten children (one of them also waiting on a second parent completed earlier) are
/// released once and each runs once.
#[actix_rt::test]
async fn parent_rescued_after_a_worker_kill_releases_its_children_once() {
    let db = TestDb::new().await;
    create_ledger(&db.client, &db.schema).await;
    // The second parent is due in 3 s, so A (one slot) takes the first parent.
    let other: i64 = db
        .query("SELECT {schema}.enqueue('fault', '{}', delay => '3 s')")
        .await[0]
        .get(0);
    let mut flow = vec![r#"{"ref":"p","kind":"fault","priority":1}"#.to_string()];
    for i in 0..10 {
        let extra = if i == 0 {
            format!(", {other}")
        } else {
            String::new()
        };
        flow.push(format!(
            r#"{{"ref":"c{i}","kind":"fault","depends_on":["p"{extra}]}}"#
        ));
    }
    let ids = sql_flow(&db, &format!("[{}]", flow.join(","))).await;
    let parent = ids[0];
    let mut a = Worker::start(&spec(&db, &worker_id("parent-a"), "sleep:60000", 1)).await;
    wait_for("A to start the parent", Duration::from_secs(10), || {
        let db = &db;
        async move {
            !ledger(&db.client, &db.schema, &format!("job_id = {parent}"))
                .await
                .is_empty()
        }
    })
    .await;
    a.kill();
    let b = Worker::start(&spec(&db, &worker_id("parent-b"), "normal", 2)).await;
    drained(&db.client, &db.schema, Duration::from_secs(30)).await;
    let row = &db
        .query(&format!(
            "SELECT state, rescues FROM {{schema}}.jobs_finished WHERE id = {parent}"
        ))
        .await[0];
    assert_eq!(
        (row.get::<_, String>(0), row.get::<_, i32>(1)),
        ("completed".into(), 1)
    );
    assert_eq!(db.count("state = 'completed'").await, 12);
    let runs = ledger_executions(&db.client, &db.schema).await;
    assert_eq!(runs[&parent], 2, "killed once, rerun once");
    for c in &ids[1..] {
        assert_eq!(runs[c], 1, "child {c} ran once");
    }
    let unresolved = db
        .query("SELECT count(*) FROM {schema}.job_deps WHERE NOT resolved")
        .await[0]
        .get::<_, i64>(0);
    assert_eq!(unresolved, 0);
    b.finish(Duration::from_secs(10)).await;
    db.cleanup().await;
}

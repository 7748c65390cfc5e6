//! The batch statements keep a linear plan whatever the statistics say.
//!
//! Statistics gathered while every job was waiting (autoanalyze after a bulk enqueue)
//! estimate the running jobs at one row. Outcome batches and lease renewals used to let
//! the planner start from those "few" running jobs and re-run the unnest of the batch
//! once per running job: quadratic, 3.4 s for 2,000 outcomes, and a 1M-job drain whose
//! outcomes fell hopelessly behind. Here the statements run as the engine runs them
//! (prepared, generic plan) against exactly such statistics, and the unnest must run
//! once. A plan shape, not a timing: it holds on a loaded machine too.

use serde_json::Value;

use crate::support::*;

const RUNNING: usize = 2_000;

/// `EXPLAIN (ANALYZE, FORMAT JSON)` of `statement` prepared as a generic plan, executed
/// with `args`, in a transaction rolled back afterwards.
async fn analyzed_plan(db: &TestDb, statement: &str, types: &str, args: &str) -> Value {
    let sql = statement.replace("/* TEMPLATE: schema */", &format!("\"{}\".", db.schema));
    let name = format!("p_{:08x}", fastrand::u32(..));
    db.client
        .batch_execute(&format!(
            "SET plan_cache_mode = force_generic_plan; PREPARE {name}({types}) AS {sql}"
        ))
        .await
        .unwrap();
    db.client.batch_execute("BEGIN").await.unwrap();
    let row = db
        .client
        .query_one(
            &format!("EXPLAIN (ANALYZE, FORMAT JSON) EXECUTE {name}({args})"),
            &[],
        )
        .await
        .unwrap();
    db.client
        .batch_execute(&format!(
            "ROLLBACK; DEALLOCATE {name}; RESET plan_cache_mode"
        ))
        .await
        .unwrap();
    row.get::<_, Value>(0)
}

/// Every node of a plan, depth first.
fn nodes(plan: &Value, out: &mut Vec<Value>) {
    out.push(plan.clone());
    if let Some(children) = plan.get("Plans").and_then(Value::as_array) {
        for c in children {
            nodes(c, out);
        }
    }
}

/// Asserts the batch's unnest ran once, and that the plan touched every row.
fn assert_unnest_ran_once(what: &str, explained: &Value) {
    let mut all = Vec::new();
    nodes(&explained[0]["Plan"], &mut all);
    let scans: Vec<&Value> = all
        .iter()
        .filter(|n| n["Node Type"] == "Function Scan")
        .collect();
    assert!(!scans.is_empty(), "{what}: no unnest in {explained}");
    for s in scans {
        assert_eq!(
            s["Actual Loops"], 1,
            "{what}: the unnest ran once per row of jobs (quadratic): {s}"
        );
    }
}

fn array(values: impl Iterator<Item = String>) -> String {
    format!("'{{{}}}'", values.collect::<Vec<_>>().join(","))
}

#[actix_rt::test]
async fn outcome_and_renewal_batches_stay_linear_after_an_analyze_with_nothing_running() {
    let db = TestDb::new().await;
    db.query("INSERT INTO {schema}.jobs (kind, args) SELECT 'probe', '{}' FROM generate_series(1, 20000)")
        .await;
    db.query("ANALYZE {schema}.jobs").await;
    db.query(&format!(
        "UPDATE {{schema}}.jobs SET state = 'running', attempt = 1, lease_token = 7, \
         lease_until = now() + interval '1 minute' WHERE id <= {RUNNING}"
    ))
    .await;
    let ids = || array((1..=RUNNING).map(|i| i.to_string()));
    let same = |v: &str| array((0..RUNNING).map(|_| v.to_string()));

    let renew = analyzed_plan(
        &db,
        include_str!("../../src/store/sql/renew.sql"),
        "bigint[], bigint[], float8",
        &format!("{}, {}, 30000", ids(), same("7")),
    )
    .await;
    assert_unnest_ran_once("renew", &renew);

    // Half complete, half retry: both statements of the batch do work.
    let actions =
        array((1..=RUNNING).map(|i| if i % 2 == 0 { "complete" } else { "retry" }.to_string()));
    let outcomes = analyzed_plan(
        &db,
        include_str!("../../src/store/sql/outcomes.sql"),
        "bigint[], bigint[], text[], float8[], text[], text[], boolean",
        &format!(
            "{}, {}, {actions}, {}, {}, {}, true",
            ids(),
            same("7"),
            same("0"),
            same("NULL"),
            same("NULL")
        ),
    )
    .await;
    assert_unnest_ran_once("outcomes", &outcomes);
    let mut all = Vec::new();
    nodes(&outcomes[0]["Plan"], &mut all);
    let written: i64 = all
        .iter()
        .filter(|n| n["Node Type"] == "ModifyTable" && n["Operation"] != "Insert")
        .map(|n| n["Actual Rows"].as_i64().unwrap_or(0))
        .sum();
    assert_eq!(
        written as usize, RUNNING,
        "every outcome applied: {outcomes}"
    );
    db.cleanup().await;
}

/// Sums a counter over every node of a plan (each node's figure is per loop).
fn total(explained: &Value, key: &str) -> f64 {
    let mut all = Vec::new();
    nodes(&explained[0]["Plan"], &mut all);
    all.iter()
        .map(|n| n[key].as_f64().unwrap_or(0.0) * n["Actual Loops"].as_f64().unwrap_or(1.0))
        .sum()
}

/// Aging finds the aged jobs of a lane through the claim index, one probe per waiting
/// priority, without reading the lane's young backlog: 100,000 young jobs and 5 aged.
#[actix_rt::test]
async fn aging_reads_the_claim_index_not_the_lanes_backlog() {
    let db = TestDb::new().await;
    db.query(
        "INSERT INTO {schema}.jobs (kind, priority, args) \
         SELECT 'probe', 1 + i % 9, '{}' FROM generate_series(1, 100000) AS i",
    )
    .await;
    db.query(
        "INSERT INTO {schema}.jobs (kind, priority, args, run_at) \
         SELECT 'probe', 7, '{}', now() - interval '1 hour' FROM generate_series(1, 5)",
    )
    .await;
    db.query("ANALYZE {schema}.jobs").await;
    let explained = analyzed_plan(
        &db,
        include_str!("../../src/store/sql/age_jobs.sql"),
        "smallint, smallint, text, float8, bigint",
        "0, 99, 'default', 60000, 1000",
    )
    .await;
    let mut all = Vec::new();
    nodes(&explained[0]["Plan"], &mut all);
    assert!(
        all.iter().all(|n| n["Node Type"] != "Seq Scan"),
        "a sequential scan: {explained}"
    );
    let read = total(&explained, "Actual Rows") + total(&explained, "Rows Removed by Filter");
    assert!(
        read < 500.0,
        "aging read {read} rows for 5 aged jobs: {explained}"
    );
    let aged = explained[0]["Plan"]["Actual Rows"].as_f64();
    assert_eq!(aged, Some(5.0), "{explained}");
    db.cleanup().await;
}

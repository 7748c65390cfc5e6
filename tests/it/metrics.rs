//! Metrics: run jobs with known outcomes on a queue of the test's own, scrape the
//! Prometheus endpoint (`pglane::prometheus`, as the `actix_web` example serves it) and
//! check every figure against what ran.

use std::collections::HashMap;
use std::sync::OnceLock;
use std::time::Duration;

use actix_web::{test, web, App};
use pglane::prometheus::PrometheusHandle;
use pglane::{Enqueue, Lane};

use crate::support::*;

/// The process's recorder (one per process; tests tell their series apart by queue).
fn recorder() -> PrometheusHandle {
    static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();
    HANDLE
        .get_or_init(|| pglane::prometheus::install().expect("install recorder"))
        .clone()
}

/// One sample of the scrape: its name, labels and value.
#[derive(Debug)]
struct Sample {
    name: String,
    labels: HashMap<String, String>,
    value: f64,
}

fn parse(text: &str) -> Vec<Sample> {
    text.lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
        .filter_map(|l| {
            let (series, value) = l.rsplit_once(' ')?;
            let (name, labels) = match series.split_once('{') {
                Some((n, rest)) => (n, rest.trim_end_matches('}')),
                None => (series, ""),
            };
            let labels = labels
                .split("\",")
                .filter(|kv| !kv.is_empty())
                .filter_map(|kv| {
                    let (k, v) = kv.split_once('=')?;
                    Some((k.to_string(), v.trim_matches('"').to_string()))
                })
                .collect();
            Some(Sample {
                name: name.to_string(),
                labels,
                value: value.parse().ok()?,
            })
        })
        .collect()
}

/// The sum of `name` over the samples whose labels include all of `want`.
fn sum(samples: &[Sample], name: &str, want: &[(&str, &str)]) -> f64 {
    samples
        .iter()
        .filter(|s| s.name == name)
        .filter(|s| {
            want.iter()
                .all(|(k, v)| s.labels.get(*k).map(String::as_str) == Some(*v))
        })
        .map(|s| s.value)
        .sum()
}

#[actix_rt::test]
async fn scrape_matches_what_ran() {
    let handle = recorder();
    let db = TestDb::new().await;
    let queue = format!("m_{:08x}", fastrand::u32(..));
    let engine = db
        .engine()
        .queue(queue.clone())
        .lane(Lane::new("fast").priorities(0..=9).concurrency(4))
        .lane(
            Lane::new("slow")
                .priorities(10..)
                .concurrency(3)
                .work_conserving(false),
        )
        .metrics_interval(Duration::from_millis(100))
        .register::<Probe>()
        .start()
        .await
        .unwrap();
    let job = |tag: &str, b: Behave| Enqueue::new(Probe::behave(tag, b)).queue(queue.clone());
    for i in 0..10 {
        engine
            .enqueue(job(&format!("ok{i}"), Behave::Succeed).priority(5))
            .await
            .unwrap();
    }
    let many = (0..2).map(|i| job(&format!("bad{i}"), Behave::FailUntil(99)).max_attempts(2));
    engine.enqueue_many(many).await.unwrap();
    engine.enqueue(job("cancel", Behave::Cancel)).await.unwrap();
    engine
        .enqueue(job("snooze", Behave::SnoozeOnce(50)))
        .await
        .unwrap();
    db.wait_count(
        &format!("queue = '{queue}' AND state IN ('completed', 'failed')"),
        14,
        Duration::from_secs(20),
    )
    .await;
    // Outcomes are counted once written; the last batch's count lands just after.
    let app = test::init_service(
        App::new()
            .app_data(web::Data::new(handle))
            .route("/metrics", web::get().to(pglane::prometheus::handler)),
    )
    .await;
    let q = queue.as_str();
    let scrape = || async {
        let req = test::TestRequest::get().uri("/metrics").to_request();
        let body = test::call_and_read_body(&app, req).await;
        parse(std::str::from_utf8(&body).unwrap())
    };
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    let samples = loop {
        let samples = scrape().await;
        let finished = sum(&samples, "pglane_jobs_finished_total", &[("queue", q)]);
        let slots = sum(&samples, "pglane_lane_slots", &[("queue", q)]);
        if finished == 17.0 && slots == 7.0 {
            break samples;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "finished {finished} of 17, slots {slots} of 7"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let s = &samples;
    let outcome = |o: &str| {
        sum(
            s,
            "pglane_jobs_finished_total",
            &[("queue", q), ("outcome", o)],
        )
    };
    assert_eq!(outcome("completed"), 11.0, "10 ok + the snoozed one");
    assert_eq!(outcome("retried"), 2.0);
    assert_eq!(outcome("failed"), 2.0);
    assert_eq!(outcome("cancelled"), 1.0);
    assert_eq!(outcome("snoozed"), 1.0);
    assert_eq!(outcome("fenced"), 0.0);
    assert_eq!(
        sum(
            s,
            "pglane_jobs_finished_total",
            &[("queue", q), ("lane", "fast"), ("kind", "probe")]
        ),
        10.0
    );
    assert_eq!(
        sum(
            s,
            "pglane_jobs_enqueued_total",
            &[("queue", q), ("kind", "probe")]
        ),
        14.0
    );
    assert_eq!(sum(s, "pglane_jobs_started_total", &[("queue", q)]), 17.0);
    assert_eq!(
        sum(s, "pglane_job_wait_seconds_count", &[("queue", q)]),
        17.0
    );
    assert_eq!(
        sum(s, "pglane_job_run_seconds_count", &[("queue", q)]),
        17.0
    );
    // Every claim that brought jobs back, and a batch size per claim.
    let claims = sum(s, "pglane_claim_seconds_count", &[("queue", q)]);
    assert!(claims >= 1.0, "{claims}");
    assert_eq!(
        sum(s, "pglane_claim_batch_jobs_count", &[("queue", q)]),
        claims
    );
    assert_eq!(sum(s, "pglane_claim_batch_jobs_sum", &[("queue", q)]), 17.0);
    assert_eq!(
        sum(s, "pglane_outcome_batch_jobs_sum", &[("queue", q)]),
        17.0
    );
    // Gauges: slots per lane, nothing running or waiting now, listener and database up.
    assert_eq!(
        sum(s, "pglane_lane_slots", &[("queue", q), ("lane", "fast")]),
        4.0
    );
    assert_eq!(
        sum(s, "pglane_lane_slots", &[("queue", q), ("lane", "slow")]),
        3.0
    );
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    loop {
        let s = scrape().await;
        let at_rest = [
            sum(&s, "pglane_lane_running", &[("queue", q)]),
            sum(&s, "pglane_lane_waiting", &[("queue", q)]),
            sum(&s, "pglane_listener_connected", &[("queue", q)]),
            sum(&s, "pglane_database_available", &[("queue", q)]),
        ];
        if at_rest == [0.0, 0.0, 1.0, 1.0] {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "gauges {at_rest:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    engine.shutdown().await.unwrap();
    db.cleanup().await;
}

//! Micro-benchmarks of the engine's pure hot paths: what runs per job outside the
//! database. Run with `cargo bench --bench hot_paths`.

// criterion_group! defines an undocumented `pub fn`.
#![allow(missing_docs)]

use std::hint::black_box;
use std::time::Duration;

use criterion::{criterion_group, criterion_main, BatchSize, Criterion};
use pglane::bench_api::{decide, LaneAccount, RunEnd};
use pglane::validate::{serialize_args, MAX_ARGS_BYTES};
use pglane::Backoff;
use serde::Serialize;

/// One claim of 16 jobs and their 16 completions: the supervisor's accounting per batch.
fn lane_accounting(c: &mut Criterion) {
    c.bench_function("lane/claim_16_finish_16", |b| {
        let mut lane = LaneAccount::new(16);
        b.iter(|| {
            lane.want();
            let asked = lane.begin_claim().unwrap_or(0);
            lane.end_claim(asked, asked);
            for _ in 0..asked {
                lane.finish();
            }
            black_box(lane.free())
        })
    });
}

fn backoff(c: &mut Criterion) {
    let b = Backoff::RETRY;
    c.bench_function("backoff/delay", |bench| {
        let mut n = 0u32;
        bench.iter(|| {
            n = n % 30 + 1;
            black_box(b.delay(black_box(n)))
        })
    });
}

#[derive(Serialize)]
struct SendEmail {
    to: String,
    template: String,
    user_id: i64,
    retries_left: u8,
    tags: Vec<String>,
}

fn args(c: &mut Criterion) {
    let small = SendEmail {
        to: "someone@example.com".into(),
        template: "welcome".into(),
        user_id: 4_211_337,
        retries_left: 3,
        tags: vec!["onboarding".into(), "eu".into()],
    };
    c.bench_function("args/validate_serialize_small", |b| {
        b.iter(|| black_box(serialize_args(black_box(&small), MAX_ARGS_BYTES)))
    });
    let large: Vec<SendEmail> = (0..200)
        .map(|i| SendEmail {
            to: format!("user{i}@example.com"),
            template: "digest".into(),
            user_id: i,
            retries_left: 1,
            tags: vec!["weekly".into()],
        })
        .collect();
    c.bench_function("args/validate_serialize_200_items", |b| {
        b.iter(|| black_box(serialize_args(black_box(&large), MAX_ARGS_BYTES)))
    });
}

fn outcome(c: &mut Criterion) {
    let backoff = Backoff::RETRY;
    c.bench_function("outcome/decide_success", |b| {
        b.iter(|| black_box(decide(RunEnd::Succeeded, black_box(1), 20, &backoff)).name())
    });
    c.bench_function("outcome/decide_retry", |b| {
        b.iter_batched(
            || RunEnd::Failed("connection refused by smtp.example.com".into()),
            |end| black_box(decide(end, black_box(3), 20, &backoff)).name(),
            BatchSize::SmallInput,
        )
    });
    c.bench_function("outcome/decide_snooze", |b| {
        b.iter(|| {
            let end = RunEnd::Snoozed(Duration::from_secs(5));
            black_box(decide(end, black_box(2), 20, &backoff)).name()
        })
    });
}

criterion_group!(benches, lane_accounting, backoff, args, outcome);
criterion_main!(benches);

#![allow(unreachable_pub)]

//! pglane's integration suite: one binary (to keep link time down), real PostgreSQL,
//! a fresh schema per test, and no sleep-based assertions.

mod support;

mod admin;
mod aging;
mod bad_input;
mod cli;
mod concurrency;
mod connection_limit;
mod core;
mod dashboard;
mod deploy;
mod encoding;
mod enqueue;
mod faults;
mod latency_target;
mod lifecycle;
mod logs;
mod metrics;
mod migrations;
mod notifications;
mod plans;
mod prefetch;
mod priority;
mod schedules;
mod shutdown;
mod test_kit;
mod tls;
mod traces;
mod tuning;
mod two_doors;

//! What the engine tells its operators: metrics through the `metrics` facade
//! (`metrics`), log lines (`logs`), and the pure rate limit that
//! keeps a flood of them (a downstream outage failing thousands of jobs a second) to a
//! few lines a second with a count of what was held back (`rate`).
//!
//! Logs go through `tracing`; install any subscriber (the examples use
//! `tracing_subscriber` with `RUST_LOG`). Job args are never logged.

pub(crate) mod logs;
pub(crate) mod metrics;
pub(crate) mod rate;
pub(crate) mod spans;

pub(crate) use logs::RunLog;

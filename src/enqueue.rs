//! Enqueueing: job options and their validation into the row the store inserts. The
//! [`Enqueue`](crate::Enqueue) message that carries them is with the other commands.

use std::time::{Duration, SystemTime};

use serde::Serialize;

use crate::error::Result;
use crate::trace_context::TraceParent;
use crate::validate::{self, Rejection};

/// Priority used when none is given (lower is more urgent).
pub const DEFAULT_PRIORITY: i16 = 100;

/// Queue used when none is given.
pub const DEFAULT_QUEUE: &str = "default";

/// Options for one job. Every setter's default is in its doc.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct JobOptions {
    priority: Option<i16>,
    run_at: Option<SystemTime>,
    delay: Option<Duration>,
    max_attempts: Option<i32>,
    queue: Option<String>,
    unique_key: Option<String>,
    timeout: Option<Duration>,
    traceparent: Option<String>,
}

impl JobOptions {
    /// Priority, 0 (most urgent) to 32767 ([`MAX_PRIORITY`](crate::MAX_PRIORITY)): an
    /// `i16` like the column, [`Lane::priorities`](crate::Lane::priorities) and
    /// [`JobContext::priority`](crate::JobContext::priority). A negative one is
    /// rejected at enqueue. Defaults to 100.
    pub fn priority(mut self, p: i16) -> Self {
        self.priority = Some(p);
        self
    }

    /// Run no earlier than this time (checked against the database clock). Defaults to
    /// now. Overrides [`delay`](Self::delay).
    pub fn run_at(mut self, at: SystemTime) -> Self {
        self.run_at = Some(at);
        self
    }

    /// Run no earlier than this long after the insert commits (database clock).
    /// Defaults to zero.
    pub fn delay(mut self, d: Duration) -> Self {
        self.delay = Some(d);
        self
    }

    /// Attempts before the job fails for good, 1 to 1000. Defaults to the kind's
    /// [`Job::MAX_ATTEMPTS`](crate::Job::MAX_ATTEMPTS) (20 unless the kind says
    /// otherwise).
    ///
    /// An `i32`, like [`Job::MAX_ATTEMPTS`](crate::Job::MAX_ATTEMPTS),
    /// [`JobContext::attempt`](crate::JobContext::attempt) and
    /// [`JobContext::max_attempts`](crate::JobContext::max_attempts).
    pub fn max_attempts(mut self, n: i32) -> Self {
        self.max_attempts = Some(n);
        self
    }

    /// The queue, a lower-case identifier. Defaults to `"default"`; an engine only
    /// claims from its own queue.
    pub fn queue(mut self, name: impl Into<String>) -> Self {
        self.queue = Some(name.into());
        self
    }

    /// A key no two live (available or running) jobs may share. Enqueueing a job whose
    /// key is taken returns the live job's id instead of inserting. Defaults to none.
    pub fn unique_key(mut self, key: impl Into<String>) -> Self {
        self.unique_key = Some(key.into());
        self
    }

    /// How long one run may take. Defaults to the kind's
    /// [`Job::TIMEOUT`](crate::Job::TIMEOUT), else the engine's job timeout.
    pub fn timeout(mut self, t: Duration) -> Self {
        self.timeout = Some(t);
        self
    }

    /// The W3C trace context to store with the job (`00-<trace id>-<span id>-<flags>`),
    /// for the run's span to link to. Defaults to the enqueuing context: inside a
    /// handler, [`JobContext::enqueue`](crate::JobContext::enqueue) continues the running
    /// job's trace; elsewhere a new trace is started when the enqueue span is recorded.
    pub fn traceparent(mut self, traceparent: impl Into<String>) -> Self {
        self.traceparent = Some(traceparent.into());
        self
    }

    /// Validates the options and serializes `args` into the row to insert, for a job of
    /// kind `kind` whose kind defaults are `max_attempts` and `timeout`.
    pub(crate) fn into_new_job<T: Serialize>(
        self,
        kind: &str,
        kind_defaults: KindDefaults,
        args: &T,
    ) -> Result<NewJob> {
        validate::kind(kind)?;
        let args = validate::serialize_args(args, validate::MAX_ARGS_BYTES)?;
        let priority = validate::priority(i64::from(self.priority.unwrap_or(DEFAULT_PRIORITY)))?;
        let max_attempts = validate::max_attempts(i64::from(
            self.max_attempts.unwrap_or(kind_defaults.max_attempts),
        ))?;
        let queue = self.queue.unwrap_or_else(|| DEFAULT_QUEUE.to_string());
        validate::identifier("queue", &queue)?;
        if let Some(at) = self.run_at {
            validate::run_at(at, SystemTime::now())?;
        }
        if let Some(d) = self.delay {
            validate::delay(d)?;
        }
        let timeout_ms = self
            .timeout
            .or(kind_defaults.timeout)
            .map(validate::timeout)
            .transpose()?;
        if let Some(key) = &self.unique_key {
            validate::unique_key(key)?;
        }
        if let Some(tp) = &self.traceparent {
            if TraceParent::parse(tp).is_none() {
                return Err(Rejection::InvalidName {
                    what: "traceparent",
                    name: tp.clone(),
                    reason: "not a W3C traceparent (00-<32 hex>-<16 hex>-<2 hex>, lower case, \
                             ids not all zero)",
                }
                .into());
            }
        }
        Ok(NewJob {
            kind: kind.to_string(),
            queue,
            priority,
            args,
            max_attempts,
            run_at: self.run_at,
            delay_s: if self.run_at.is_none() {
                self.delay.map(|d| d.as_secs_f64())
            } else {
                None
            },
            timeout_ms,
            unique_key: self.unique_key,
            traceparent: self.traceparent,
        })
    }
}

/// A job kind's defaults for the options a job leaves unset.
#[derive(Debug, Clone, Copy)]
pub(crate) struct KindDefaults {
    pub(crate) max_attempts: i32,
    pub(crate) timeout: Option<Duration>,
}

/// A validated job, ready to insert.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct NewJob {
    pub(crate) kind: String,
    pub(crate) queue: String,
    pub(crate) priority: i16,
    pub(crate) args: String,
    pub(crate) max_attempts: i32,
    pub(crate) run_at: Option<SystemTime>,
    pub(crate) delay_s: Option<f64>,
    pub(crate) timeout_ms: Option<i32>,
    pub(crate) unique_key: Option<String>,
    /// The W3C trace context stored in `metadata` (see `trace_context`).
    pub(crate) traceparent: Option<String>,
}

/// The priority to wake workers with after inserting `jobs`: the most urgent of those
/// due at once. `None` when all are scheduled for later (the poll finds those).
pub(crate) fn wake_hint(jobs: &[NewJob]) -> Option<i16> {
    jobs.iter()
        .filter(|j| j.run_at.is_none() && j.delay_s.is_none())
        .map(|j| j.priority)
        .min()
}

//! Log lines for runs that ended: a failed attempt at `warn`, a job failed for good at
//! `error`, a handler's cancel at `warn`; each with the job's id, kind, queue, lane,
//! attempt and max attempts and the error text, never its args. Both kinds of line are
//! rate limited (a downstream outage can fail thousands of jobs a second): past the
//! burst, a few lines a second get through, each carrying how many were held back.

use std::time::Instant;

use super::rate::RateLimit;
use crate::dispatch::RunEnded;
use crate::outcome::Action;

/// Failed attempts: up to 20 lines at once, then 5 a second.
const ATTEMPT_BURST: u32 = 20;
const ATTEMPTS_PER_SECOND: f64 = 5.0;
/// Jobs failed for good: up to 50 lines at once, then 20 a second (each one is a job
/// someone may have to look at, so fewer are held back).
const FAILED_BURST: u32 = 50;
const FAILED_PER_SECOND: f64 = 20.0;

/// Logs runs that ended, for one engine (held by its supervisor).
#[derive(Debug)]
pub(crate) struct RunLog {
    queue: String,
    attempts: RateLimit,
    failed: RateLimit,
}

impl RunLog {
    /// A log for the engine working on `queue`.
    pub(crate) fn new(queue: &str) -> Self {
        RunLog {
            queue: queue.to_string(),
            attempts: RateLimit::new(ATTEMPT_BURST, ATTEMPTS_PER_SECOND),
            failed: RateLimit::new(FAILED_BURST, FAILED_PER_SECOND),
        }
    }

    /// Logs run `end` of lane `lane`, which ended with `action`.
    pub(crate) fn ended(&mut self, now: Instant, lane: &str, end: &RunEnded, action: &Action) {
        let f = &end.facts;
        let ran_for = now.saturating_duration_since(end.launched_at);
        match action {
            Action::Retry {
                delay,
                error,
                cause,
            } => {
                if let Some(suppressed) = self.attempts.allow(now) {
                    tracing::warn!(
                        job = end.key.job,
                        kind = f.kind,
                        queue = %self.queue,
                        lane,
                        attempt = f.attempt,
                        max_attempts = f.max_attempts,
                        cause,
                        ?ran_for,
                        retry_in = ?delay,
                        error = %error,
                        suppressed,
                        "job attempt failed; it will be retried"
                    );
                }
            }
            Action::Fail { error, cause } if *cause == "cancel" => {
                if let Some(suppressed) = self.attempts.allow(now) {
                    tracing::warn!(
                        job = end.key.job,
                        kind = f.kind,
                        queue = %self.queue,
                        lane,
                        attempt = f.attempt,
                        max_attempts = f.max_attempts,
                        error = %error,
                        suppressed,
                        "job cancelled by its handler; it will not run again"
                    );
                }
            }
            Action::Fail { error, cause } => {
                if let Some(suppressed) = self.failed.allow(now) {
                    tracing::error!(
                        job = end.key.job,
                        kind = f.kind,
                        queue = %self.queue,
                        lane,
                        attempt = f.attempt,
                        max_attempts = f.max_attempts,
                        cause,
                        ?ran_for,
                        error = %error,
                        suppressed,
                        "job failed for good: its attempts are used up"
                    );
                }
            }
            Action::Complete | Action::Snooze { .. } | Action::Release => {
                tracing::debug!(
                    job = end.key.job,
                    kind = f.kind,
                    lane,
                    attempt = f.attempt,
                    outcome = action.name(),
                    "job run ended"
                );
            }
        }
    }
}

//! What happens to a job after a run: the pure decision from a handler's answer to the
//! state change the completer writes.

use std::time::Duration;

use crate::backoff::Backoff;

/// Longest error text kept per attempt; longer messages are cut at a char boundary.
pub const MAX_ERROR_BYTES: usize = 4096;

/// How a run ended, as seen by the executor.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum RunResult {
    Succeeded,
    /// The handler returned an error, panicked, timed out, or its args did not decode.
    Failed {
        error: String,
        cause: FailureCause,
    },
    Cancelled(String),
    Snoozed(Duration),
    /// The run's future was dropped before it finished: its runtime shut down, or it was
    /// aborted (a timeout, a stuck thread, the end of the shutdown grace period).
    Abandoned,
}

/// Why a run failed, recorded with the error text.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum FailureCause {
    Error,
    Panic,
    Timeout,
    /// Past its timeout, the run was still blocking its handler thread.
    Stuck,
    /// A user cancelled the run and it did not stop within the grace period.
    Cancel,
}

impl FailureCause {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            FailureCause::Error => "error",
            FailureCause::Panic => "panic",
            FailureCause::Timeout => "timeout",
            FailureCause::Stuck => "stuck",
            FailureCause::Cancel => "cancel",
        }
    }
}

impl RunResult {
    pub(crate) fn panicked(payload: &(dyn std::any::Any + Send)) -> Self {
        let msg = if let Some(s) = payload.downcast_ref::<&str>() {
            (*s).to_string()
        } else if let Some(s) = payload.downcast_ref::<String>() {
            s.clone()
        } else {
            "panic with a non-string payload".to_string()
        };
        RunResult::Failed {
            error: format!("handler panicked: {msg}"),
            cause: FailureCause::Panic,
        }
    }
}

/// The state change to write for a job. Every variant is applied only while the job is
/// still `running` under the same lease token.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Action {
    /// Move to history as `completed`.
    Complete,
    /// Back to `available` after `delay`, recording the error.
    Retry {
        delay: Duration,
        error: String,
        cause: &'static str,
    },
    /// Move to history as `failed`, recording the error.
    Fail { error: String, cause: &'static str },
    /// Back to `available` after `delay`, giving the attempt back.
    Snooze { delay: Duration },
    /// Back to `available` at its old `run_at`, giving the attempt back (shutdown before
    /// it finished, or a claim that returned after its lane was paused).
    Release,
}

impl Action {
    /// The short name used in SQL and logs.
    pub(crate) fn name(&self) -> &'static str {
        match self {
            Action::Complete => "complete",
            Action::Retry { .. } => "retry",
            Action::Fail { .. } => "fail",
            Action::Snooze { .. } => "snooze",
            Action::Release => "release",
        }
    }
}

/// Decides what to write after a run of attempt `attempt` out of `max_attempts`.
pub(crate) fn decide(
    result: RunResult,
    attempt: i32,
    max_attempts: i32,
    backoff: &Backoff,
) -> Action {
    match result {
        RunResult::Succeeded => Action::Complete,
        RunResult::Cancelled(reason) => Action::Fail {
            error: truncate(format!("cancelled by handler: {reason}")),
            cause: "cancel",
        },
        RunResult::Snoozed(delay) => Action::Snooze { delay },
        // It never ran to its end here: back in line, attempt given back.
        RunResult::Abandoned => Action::Release,
        RunResult::Failed { error, cause } => {
            let error = truncate(error);
            if attempt >= max_attempts {
                Action::Fail {
                    error,
                    cause: cause.as_str(),
                }
            } else {
                let delay = backoff.delay(attempt.max(1) as u32);
                Action::Retry {
                    delay,
                    error,
                    cause: cause.as_str(),
                }
            }
        }
    }
}

/// Decides what to write for a run found blocking its handler thread past its
/// `timeout` (for `blocked_for` inside one poll), when `stuck_before` earlier runs of the
/// job did the same. Like a timeout, it is a failed attempt with cause `stuck`; on the
/// `limit`-th stuck run (the engine's `max_rescues`) the job is failed like a poison
/// pill, whatever attempts remain, so it cannot take one more thread per attempt.
pub(crate) fn decide_stuck(
    stuck_before: i64,
    limit: i32,
    attempt: i32,
    max_attempts: i32,
    timeout: Duration,
    blocked_for: Duration,
    backoff: &Backoff,
) -> Action {
    let n = stuck_before + 1;
    let error = format!(
        "timed out after {timeout:?} while blocking its handler thread (inside one poll for \
         {blocked_for:?}: a blocking call in async code?); the thread was written off"
    );
    if n >= i64::from(limit) {
        return Action::Fail {
            error: truncate(format!(
                "{error}. Blocked a handler thread {n} times: failed as a poison pill"
            )),
            cause: FailureCause::Stuck.as_str(),
        };
    }
    let result = RunResult::Failed {
        error,
        cause: FailureCause::Stuck,
    };
    decide(result, attempt, max_attempts, backoff)
}

/// Cuts `s` to at most [`MAX_ERROR_BYTES`] bytes at a char boundary.
pub(crate) fn truncate(mut s: String) -> String {
    if s.len() > MAX_ERROR_BYTES {
        let mut cut = MAX_ERROR_BYTES;
        while !s.is_char_boundary(cut) {
            cut -= 1;
        }
        s.truncate(cut);
    }
    // jsonb cannot store NUL; error texts come from arbitrary handler code.
    if s.contains('\0') {
        s = s.replace('\0', "\u{FFFD}");
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    const NO_JITTER: Backoff = Backoff {
        base: Duration::from_secs(1),
        max: Duration::from_secs(60),
        jitter: 0.0,
    };

    #[test]
    fn success_completes() {
        assert_eq!(
            decide(RunResult::Succeeded, 1, 3, &NO_JITTER),
            Action::Complete
        );
    }

    #[test]
    fn failures_retry_with_backoff_until_the_last_attempt() {
        let fail = || RunResult::Failed {
            error: "boom".into(),
            cause: FailureCause::Error,
        };
        assert_eq!(
            decide(fail(), 1, 3, &NO_JITTER),
            Action::Retry {
                delay: Duration::from_secs(1),
                error: "boom".into(),
                cause: "error"
            }
        );
        assert_eq!(
            decide(fail(), 2, 3, &NO_JITTER),
            Action::Retry {
                delay: Duration::from_secs(2),
                error: "boom".into(),
                cause: "error"
            }
        );
        assert_eq!(
            decide(fail(), 3, 3, &NO_JITTER),
            Action::Fail {
                error: "boom".into(),
                cause: "error"
            }
        );
    }

    #[test]
    fn cancel_fails_at_once_and_snooze_keeps_the_attempt() {
        let a = decide(
            RunResult::Cancelled("no such user".into()),
            1,
            5,
            &NO_JITTER,
        );
        assert!(matches!(
            a,
            Action::Fail {
                cause: "cancel",
                ..
            }
        ));
        let s = decide(RunResult::Snoozed(Duration::from_secs(9)), 5, 5, &NO_JITTER);
        assert_eq!(
            s,
            Action::Snooze {
                delay: Duration::from_secs(9)
            }
        );
    }

    #[test]
    fn panics_are_failed_attempts_with_their_message() {
        let r = RunResult::panicked(&"oh no");
        assert_eq!(
            r,
            RunResult::Failed {
                error: "handler panicked: oh no".into(),
                cause: FailureCause::Panic
            }
        );
        let r = RunResult::panicked(&String::from("formatted 7"));
        assert!(matches!(r, RunResult::Failed { ref error, .. } if error.ends_with("formatted 7")));
        assert!(matches!(
            decide(r, 1, 1, &NO_JITTER),
            Action::Fail { cause: "panic", .. }
        ));
    }

    #[test]
    fn a_job_that_keeps_blocking_its_thread_is_failed_at_the_limit() {
        let (t, b) = (Duration::from_secs(1), Duration::from_millis(1200));
        let first = decide_stuck(0, 3, 1, 20, t, b, &NO_JITTER);
        assert!(
            matches!(&first, Action::Retry { cause: "stuck", error, .. } if error.contains("blocking its handler thread")),
            "{first:?}"
        );
        let third = decide_stuck(2, 3, 3, 20, t, b, &NO_JITTER);
        assert!(
            matches!(&third, Action::Fail { cause: "stuck", error } if error.contains("3 times: failed as a poison pill")),
            "{third:?}"
        );
        let last_attempt = decide_stuck(0, 3, 2, 2, t, b, &NO_JITTER);
        assert!(matches!(last_attempt, Action::Fail { cause: "stuck", .. }));
    }

    #[test]
    fn errors_are_truncated_on_char_boundaries_and_nul_free() {
        let long = "é".repeat(MAX_ERROR_BYTES);
        let t = truncate(long);
        assert!(t.len() <= MAX_ERROR_BYTES && t.chars().all(|c| c == 'é'));
        assert_eq!(truncate("a\0b".into()), "a\u{FFFD}b");
    }
}

//! Cancelling a job by a user's request: what a cancel answers, and how the database's
//! refusal (a finished or unknown job) becomes a typed error.
//!
//! One implementation serves every door: `engine.cancel`, the [`Cancel`](crate::Cancel)
//! message, `pglane cancel` and SQL `pglane.cancel(id)` all call the schema's `cancel()`
//! function (migration 5), which cancels a job that has not started at once and records
//! a durable request for a running one, notifying its worker.

use crate::error::{Error, Result};

/// What a cancel did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum CancelOutcome {
    /// The job had not started (available, scheduled, or waiting on parents): it is now
    /// `cancelled` and will never run.
    Cancelled,
    /// The job is running: the request is recorded and its worker told. The run ends
    /// `cancelled` (not retried) unless its outcome was written before the request; its
    /// handler sees [`JobContext::cancelled`](crate::JobContext::cancelled) and is
    /// aborted after the engine's `cancel_grace`.
    Requested,
}

impl CancelOutcome {
    /// Reads the `cancel()` function's answer.
    pub(crate) fn parse(answer: &str) -> Result<Self> {
        match answer {
            "cancelled" => Ok(CancelOutcome::Cancelled),
            "requested" => Ok(CancelOutcome::Requested),
            other => Err(Error::Conflict(format!(
                "unexpected answer {other:?} from cancel(): is the schema newer than this pglane?"
            ))),
        }
    }
}

/// Turns the `cancel()` function's refusals into [`Error::NotCancellable`]: SQLSTATE
/// 55000 (already finished) and P0002 (no such job). Other errors pass through.
pub(crate) fn refusal(id: i64, e: Error) -> Error {
    let Error::Database(db) = &e else { return e };
    let Some(server) = db.as_db_error() else {
        return e;
    };
    match server.code().code() {
        "55000" | "P0002" => Error::NotCancellable {
            id,
            reason: server.message().trim_start_matches("pglane: ").to_string(),
        },
        _ => e,
    }
}

/// The prefix of a cancel notification's payload: `cancel:<job id>:<lease token>`, sent
/// by the `cancel()` function on the engine's channel.
const NOTICE_PREFIX: &str = "cancel:";

/// Reads a cancel notification's payload: the run (job id and lease token) to cancel.
/// `None` if the payload is not one. Anyone who can connect can NOTIFY, but a forged
/// notice needs the run's random 64-bit lease token to touch it.
pub(crate) fn parse_notice(payload: &str) -> Option<(i64, i64)> {
    let (id, token) = payload.strip_prefix(NOTICE_PREFIX)?.split_once(':')?;
    Some((id.parse().ok()?, token.parse().ok()?))
}

/// Whether a payload is a cancel notification (well formed or not).
pub(crate) fn is_notice(payload: &str) -> bool {
    payload.starts_with(NOTICE_PREFIX)
}

/// Who asked, for a cancel sent through an engine: its worker id.
pub(crate) fn engine_requester(worker_id: &str) -> String {
    format!("engine {worker_id}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn answers() {
        assert_eq!(
            CancelOutcome::parse("cancelled").unwrap(),
            CancelOutcome::Cancelled
        );
        assert_eq!(
            CancelOutcome::parse("requested").unwrap(),
            CancelOutcome::Requested
        );
        assert!(CancelOutcome::parse("maybe").is_err());
    }

    #[test]
    fn notices() {
        assert_eq!(parse_notice("cancel:42:-7"), Some((42, -7)));
        assert_eq!(parse_notice("cancel:42"), None);
        assert_eq!(parse_notice("cancel:x:1"), None);
        assert_eq!(parse_notice("42"), None);
        assert!(is_notice("cancel:junk") && !is_notice("5"));
    }

    #[test]
    fn other_errors_pass_through() {
        let e = refusal(1, Error::ShuttingDown);
        assert!(matches!(e, Error::ShuttingDown));
    }
}

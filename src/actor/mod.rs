//! The engine's actors. Each is thin: it turns messages into calls on the pure cores
//! (the dispatch core, outcome decisions, backoff) and the store.
//!
//! ```text
//!  app / Engine ── Enqueue / Cancel / Retry / Pause / Resume / SetConcurrency / Stats / Shutdown ──▶ JobSupervisor
//!  Listener ── JobsAvailable { priority hint } ──▶ JobSupervisor (dispatch core inside)
//!  JobSupervisor ── Claim { limit = free slots, floor, token } ──▶ Claimer (one per lane) ── ClaimReturned ──▶ JobSupervisor
//!  JobSupervisor ── spawn ──▶ executor (handler runtimes) ── RunsEnded ──▶ JobSupervisor
//!  JobSupervisor ── Outcomes / HandBack / WriteStuck ──▶ Completer (group commit)
//!  JobSupervisor ── Renew ──▶ Leases ── LeasesLost ──▶ JobSupervisor
//!  Maintenance: rescue expired leases, prune, vacuum, schema check ── WakeLanes / SchemaVerified ──▶ JobSupervisor
//!  Scheduler: fires due ticks of the engine's periodic jobs (compare-and-set per tick; NOTIFY wakes the lanes)
//! ```

pub(crate) mod claimer;
pub(crate) mod completer;
pub(crate) mod executor;
pub(crate) mod heartbeat;
pub(crate) mod leases;
pub(crate) mod listener;
pub(crate) mod maintenance;
pub(crate) mod scheduler;
pub(crate) mod supervisor;

use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Lets one message through per interval, counting the rest, so an outage produces a
/// log line every few seconds instead of a storm.
#[derive(Debug)]
pub(crate) struct LogLimiter {
    every: Duration,
    state: Mutex<(Option<Instant>, u64)>,
}

impl LogLimiter {
    pub(crate) fn new(every: Duration) -> Self {
        LogLimiter {
            every,
            state: Mutex::new((None, 0)),
        }
    }

    /// `Some(suppressed)` when a line may be logged now, with how many were held back.
    pub(crate) fn allow(&self) -> Option<u64> {
        let mut s = self.state.lock().unwrap_or_else(|p| p.into_inner());
        match s.0 {
            Some(t) if t.elapsed() < self.every => {
                s.1 += 1;
                None
            }
            _ => {
                let suppressed = s.1;
                *s = (Some(Instant::now()), 0);
                Some(suppressed)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limiter_lets_one_through_per_interval() {
        let l = LogLimiter::new(Duration::from_secs(3600));
        assert_eq!(l.allow(), Some(0));
        assert_eq!(l.allow(), None);
        assert_eq!(l.allow(), None);
        let l = LogLimiter::new(Duration::ZERO);
        assert_eq!(l.allow(), Some(0));
        assert_eq!(l.allow(), Some(0));
    }
}

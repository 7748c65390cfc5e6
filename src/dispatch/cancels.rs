//! A user's cancel of a running job, as far as this process is concerned.
//!
//! The database already decided the outcome: once the request is recorded, whatever the
//! run answers is written as `cancelled` (see `outcomes.sql`). What is left here is to
//! stop the run: its handler is told at once (by the actor, through its context), and
//! the run's deadline moves to the end of the grace period, so the ordinary timeout
//! path aborts it then (or finds its thread stuck) and frees its slot.

use std::time::Instant;

use super::{Claimed, Dispatcher, RunKey};

impl<J: Claimed, H> Dispatcher<J, H> {
    /// A user asked to cancel run `key` (a notification, or a renewal that found the
    /// request). Returns whether the run is here and not yet told: then the actor tells
    /// its handler. A request for another attempt of the job (another token), or one
    /// that arrives twice (notification and renewal), changes nothing.
    pub(crate) fn cancel_requested(&mut self, key: RunKey, now: Instant) -> bool {
        let grace = self.config.cancel_grace;
        let Some(run) = self.runs.get_mut(&key) else {
            return false;
        };
        if run.cancelling || run.stuck {
            return false;
        }
        run.cancelling = true;
        run.deadline = run.deadline.min(now + grace);
        true
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::super::testkit::*;
    use crate::lane::Lane;
    use crate::outcome::{Action, RunResult};

    use super::RunKey;

    const GRACE: Duration = Duration::from_secs(2);

    #[test]
    fn a_cancelled_run_is_aborted_after_the_grace_period_and_its_slot_reused() {
        let mut r = Rig::with(vec![Lane::new("only").concurrency(1)], config(2, 4));
        r.wake(None);
        let c = r.take_claim(0);
        r.answer(c, Ok(jobs(1, 1, 1)));
        let run = r.launched_keys()[0];
        r.started(&[run]);
        let other_attempt = RunKey {
            job: run.job,
            token: run.token + 1,
        };
        assert!(
            !r.core.cancel_requested(other_attempt, r.now),
            "another attempt"
        );
        assert!(r.core.cancel_requested(run, r.now));
        assert!(!r.core.cancel_requested(run, r.now), "told once");
        r.tick(GRACE - Duration::from_millis(1));
        assert!(r.aborts.is_empty(), "the handler may still stop by itself");
        r.tick(Duration::from_millis(1));
        assert_eq!(r.aborts, [run]);
        assert!(matches!(
            r.outcomes[..],
            [(k, Action::Retry { cause: "cancel", .. })] if k == run
        ));
        assert_eq!(r.take_claim(0).limit, 1, "its slot is reused at once");
        r.end(&[run], RunResult::Succeeded);
        assert_eq!(r.outcomes.len(), 1, "a late outcome is ignored");
    }

    #[test]
    fn a_run_that_stops_within_the_grace_period_ends_as_it_answers() {
        let mut r = Rig::with(vec![Lane::new("only").concurrency(1)], config(2, 4));
        r.wake(None);
        let c = r.take_claim(0);
        r.answer(c, Ok(jobs(1, 1, 1)));
        let run = r.launched_keys()[0];
        r.started(&[run]);
        assert!(r.core.cancel_requested(run, r.now));
        r.end(&[run], RunResult::Cancelled("stopped".into()));
        r.tick(GRACE);
        assert!(r.aborts.is_empty());
        assert!(matches!(
            r.outcomes[..],
            [(
                _,
                Action::Fail {
                    cause: "cancel",
                    ..
                }
            )]
        ));
    }
}

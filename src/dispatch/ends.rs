//! Runs that started, ended, or lost their lease.

use std::time::Instant;

use super::{Claimed, Dispatcher, Effects, Launcher, RunEnded, RunKey};
use crate::outcome::{decide, Action, RunResult};

impl<J: Claimed, H> Dispatcher<J, H> {
    /// Runs ended (returned, panicked, or their future was dropped): free their slots,
    /// decide their outcomes, start held jobs in the freed slots, and refill the lanes.
    pub(crate) fn runs_ended<L>(
        &mut self,
        ended: impl IntoIterator<Item = (RunKey, RunResult)>,
        launcher: &mut L,
        now: Instant,
        fx: &mut Effects<H>,
    ) where
        L: Launcher<J, Handle = H>,
    {
        for (key, result) in ended {
            let Some(run) = self.runs.remove(&key) else {
                // Already written off (timed out, handed back, or released at the end of
                // the grace period): its late outcome is fenced off here, and the
                // database fence would reject it anyway.
                continue;
            };
            let lane = &mut self.lanes[run.lane];
            lane.account.finish();
            lane.refill = true;
            if run.stuck {
                // Its outcome was written when it was found stuck; its thread is free.
                lane.stuck -= 1;
                self.stuck_runs -= 1;
                fx.threads = Some(self.threads.freed_on(run.generation));
                // Lanes held back for want of a thread may claim again.
                for lane in &mut self.lanes {
                    lane.refill = true;
                }
                continue;
            }
            if run.rescued {
                self.rescued_running -= 1;
            }
            let action = match result {
                // The future was dropped before it finished, and not by this core: the
                // job did not run to its end here, so it goes back without an attempt.
                RunResult::Abandoned => Action::Release,
                result => decide(
                    result,
                    run.facts.attempt,
                    run.facts.max_attempts,
                    &self.config.retry_backoff,
                ),
            };
            fx.ended.push(RunEnded {
                key,
                lane: run.lane,
                facts: run.facts,
                launched_at: run.launched_at,
                outcome: fx.outcomes.len(),
            });
            fx.outcomes.push((key, action));
        }
        self.start_ready(launcher, now, fx);
        self.after_slots_freed(fx);
    }

    /// These runs were polled by a handler thread (their leases may be renewed).
    pub(crate) fn runs_started(&mut self, started: impl IntoIterator<Item = RunKey>) {
        for key in started {
            if let Some(run) = self.runs.get_mut(&key) {
                run.started = true;
            }
        }
    }

    /// A renewal found these runs' leases gone: their outcomes will be fenced off, and
    /// they are not renewed again.
    pub(crate) fn leases_lost(&mut self, lost: impl IntoIterator<Item = RunKey>) {
        for key in lost {
            if self.drop_ready(key) {
                tracing::warn!(
                    job = key.job,
                    "lease lost while prefetched; the job is dropped here"
                );
                continue;
            }
            if let Some(run) = self.runs.get_mut(&key) {
                if !run.lease_lost {
                    run.lease_lost = true;
                    tracing::warn!(
                        job = key.job,
                        kind = run.facts.kind,
                        "lease lost while running; its outcome will be fenced off"
                    );
                }
            }
        }
    }
}

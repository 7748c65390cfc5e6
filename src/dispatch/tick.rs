//! The tick: timeouts, handler threads stuck in a run, runs that never got a thread, and
//! lease renewals.

use std::time::Instant;

use super::{Claimed, Dispatcher, Effects, Launcher, RunEnded, RunKey, RunProbe, StuckRun};
use crate::outcome::{decide, FailureCause, RunResult};

impl<J: Claimed, H> Dispatcher<J, H> {
    /// Time passed (`now`): write off runs past their deadline, find stuck threads, hand
    /// back runs that never started, and say which leases to renew.
    ///
    /// A run past its deadline that no thread is polling is aborted (abort takes effect at
    /// once: the task is not running), recorded as a timeout, and its slot is reused. One
    /// that a thread has been inside a single poll of for `stuck_poll` is blocking that
    /// thread (a blocking call in async code), which abort cannot stop: it keeps its slot
    /// until its future is gone, its thread is counted as stuck (and replaced, up to the
    /// cap), and the actor writes its outcome. One inside a shorter poll is looked at
    /// again at the next tick.
    /// Held (prefetched) jobs have their leases renewed too, and start in freed slots.
    pub(crate) fn tick<L>(
        &mut self,
        now: Instant,
        probe: &mut impl RunProbe,
        launcher: &mut L,
        fx: &mut Effects<H>,
    ) where
        L: Launcher<J, Handle = H>,
    {
        let mut due = std::mem::take(&mut self.scratch);
        due.extend(
            self.runs
                .iter()
                .filter(|(_, r)| {
                    !r.stuck
                        && (r.deadline <= now
                            || (!r.started && now - r.launched_at >= self.config.start_within))
                })
                .map(|(k, _)| *k),
        );
        for key in due.drain(..) {
            let Some(run) = self.runs.get(&key) else {
                continue;
            };
            if run.deadline <= now {
                match probe.in_poll_since(key) {
                    Some(since) if now - since >= self.config.stuck_poll => {
                        self.found_stuck(key, now - since, fx)
                    }
                    Some(_) => {}
                    None => self.time_out(key, fx),
                }
            } else if probe.revoke_unstarted(key) {
                // No thread took it up in time (its runtime's threads are all stuck): it
                // will never start here, so give it back rather than hold it hostage.
                tracing::warn!(
                    job = key.job,
                    kind = run.facts.kind,
                    "no handler thread started the job in time; handing it back"
                );
                let run = self.remove(key);
                fx.aborts.extend(run.handle);
                self.hand_back(run.lane, key, fx);
            } else if let Some(run) = self.runs.get_mut(&key) {
                run.started = true;
            }
        }
        self.scratch = due;
        if self.next_renewal.is_none_or(|t| now >= t) {
            self.next_renewal = Some(now + self.config.renew_every);
            fx.renewals.extend(
                self.runs
                    .iter()
                    .filter(|(_, r)| r.started && !r.lease_lost && !r.stuck)
                    .map(|(k, _)| *k),
            );
            let held: Vec<RunKey> = self.ready_keys().collect();
            fx.renewals.extend(held);
        }
        self.tick_targets(now);
        self.start_ready(launcher, now, fx);
        self.after_slots_freed(fx);
    }

    /// Writes off a run past its deadline that no thread is polling.
    fn time_out(&mut self, key: RunKey, fx: &mut Effects<H>) {
        let run = self.remove(key);
        if run.cancelling {
            tracing::warn!(
                job = key.job,
                kind = run.facts.kind,
                "cancelled job did not stop within the grace period; aborted"
            );
        } else {
            // Logged at `warn` or `error` with its outcome (cause `timeout`) by the actor.
            tracing::debug!(
                job = key.job,
                kind = run.facts.kind,
                attempt = run.facts.attempt,
                "job timed out; its slot is freed and a late outcome will be ignored"
            );
        }
        fx.aborts.extend(run.handle);
        let lane = &mut self.lanes[run.lane];
        lane.account.finish();
        lane.refill = true;
        // A cancelled run is written as an ordinary failure: the database turns any
        // outcome of a run whose cancel it recorded into `cancelled`.
        let result = if run.cancelling {
            RunResult::Failed {
                error: "aborted: cancelled, and the handler did not stop within the grace period"
                    .into(),
                cause: FailureCause::Cancel,
            }
        } else {
            RunResult::Failed {
                error: "timed out".into(),
                cause: FailureCause::Timeout,
            }
        };
        let action = decide(
            result,
            run.facts.attempt,
            run.facts.max_attempts,
            &self.config.retry_backoff,
        );
        fx.ended.push(RunEnded {
            key,
            lane: run.lane,
            facts: run.facts,
            launched_at: run.launched_at,
            outcome: fx.outcomes.len(),
        });
        fx.outcomes.push((key, action));
    }

    /// A run past its deadline has held its thread inside one poll for `blocked_for`.
    fn found_stuck(&mut self, key: RunKey, blocked_for: std::time::Duration, fx: &mut Effects<H>) {
        let Some(run) = self.runs.get_mut(&key) else {
            return;
        };
        run.stuck = true;
        fx.aborts.extend(run.handle.take());
        let (lane, generation, rescued, facts) = (run.lane, run.generation, run.rescued, run.facts);
        self.stuck_runs += 1;
        if rescued {
            // Its outcome is written now and it runs nothing more: another rescued job
            // may run here.
            self.rescued_running -= 1;
        }
        self.lanes[lane].stuck += 1;
        if let Some(change) = self.threads.stuck_on(generation) {
            fx.threads = Some(change);
        }
        fx.stuck.push(StuckRun {
            key,
            lane,
            kind: facts.kind,
            attempt: facts.attempt,
            max_attempts: facts.max_attempts,
            timeout: facts.timeout,
            blocked_for,
        });
    }

    /// Removes a run that is not stuck from the map.
    fn remove(&mut self, key: RunKey) -> super::Run<H> {
        // INVARIANT: callers looked the key up in this call.
        let run = self.runs.remove(&key).expect("run present");
        if run.rescued {
            self.rescued_running -= 1;
        }
        run
    }
}

//! Shutdown: stop claiming, wait for quiet, release what is left at the end of the grace
//! period.

use super::{Claimed, Dispatcher, Effects, ShuttingDown, WaiterId};
use crate::outcome::Action;

/// What a shutdown did with the runs it found.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(crate) struct ShutdownCounts {
    /// Runs in progress when shutdown began that ended within the grace period.
    pub(crate) finished: usize,
    /// Runs still in progress at its end, handed back (attempt given back).
    pub(crate) released: usize,
}

impl<J: Claimed, H> Dispatcher<J, H> {
    /// Begins (or joins) shutdown: no lane claims again. Returns a waiter answered once
    /// all is quiet, and whether this call began the shutdown.
    pub(crate) fn shutdown(&mut self, fx: &mut Effects<H>) -> (WaiterId, bool) {
        let first = self.shutdown.is_none();
        if first {
            for (i, lane) in self.lanes.iter_mut().enumerate() {
                lane.account.drain();
                self.gate.set(i, false);
            }
            // Prefetched jobs go back at once (attempt given back, place kept).
            for i in 0..self.lanes.len() {
                self.hand_back_ready(i, fx);
            }
            self.shutdown = Some(ShuttingDown {
                running_at_start: self.running(),
                waiters: Vec::new(),
            });
        }
        let waiter = self.new_waiter();
        if let Some(s) = self.shutdown.as_mut() {
            s.waiters.push(waiter);
        }
        self.check_quiet(fx);
        (waiter, first)
    }

    /// Quiet: nothing runs (stuck runs aside: their outcomes are written and nothing
    /// can end them), no claim is in flight and no rescued job waits to start. During
    /// shutdown, answers the waiters once quiet.
    pub(super) fn check_quiet(&mut self, fx: &mut Effects<H>) {
        if self.is_quiet() {
            if let Some(s) = self.shutdown.as_mut() {
                fx.replies.append(&mut s.waiters);
            }
        }
    }

    /// Whether shutdown began and all is quiet.
    pub(crate) fn is_quiet(&self) -> bool {
        self.shutdown.is_some()
            && self.running() == 0
            && self.held.is_none()
            && self.lanes.iter().all(|l| l.in_flight.is_none())
    }

    /// The grace period is over: abort and hand back every run still in progress
    /// (without using an attempt) and the rescued job held back, if any. Stuck runs are
    /// let go: their outcomes are written and their threads are leaked.
    pub(crate) fn grace_over(&mut self, fx: &mut Effects<H>) -> ShutdownCounts {
        let mut released = 0;
        for (key, mut run) in self.runs.drain() {
            fx.aborts.extend(run.handle.take());
            if !run.stuck {
                released += 1;
                fx.outcomes.push((key, Action::Release));
            }
            self.lanes[run.lane].account.finish();
        }
        if let Some(held) = self.held.take() {
            let key = super::RunKey {
                job: held.job.id(),
                token: held.token,
            };
            self.lanes[held.lane].account.finish();
            fx.outcomes.push((key, Action::Release));
        }
        self.stuck_runs = 0;
        self.rescued_running = 0;
        for lane in &mut self.lanes {
            lane.stuck = 0;
        }
        let at_start = self.shutdown.as_ref().map_or(0, |s| s.running_at_start);
        ShutdownCounts {
            finished: at_start.saturating_sub(released),
            released,
        }
    }
}

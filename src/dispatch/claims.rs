//! Claims: when a lane claims, how much and how far it borrows, and what happens to the
//! jobs a claim returns.
//!
//! Invariant: a lane claims only into free slots (`limit` = slots neither running nor
//! reserved), at most one claim per lane is in flight, and no claim is issued while
//! claims are off (schema unverified), the lane is paused or draining, or no handler
//! thread is left to start what it would bring back.

use std::time::Instant;

use super::lanes::borrow_floor;
use super::{ClaimOrder, Claimed, Dispatcher, Effects, Held, LaneId, Launcher, Run, RunKey};
use crate::outcome::Action;

impl<J: Claimed, H> Dispatcher<J, H> {
    /// Schema verified: claims may start.
    pub(crate) fn enable_claims(&mut self, fx: &mut Effects<H>) {
        self.claiming = true;
        self.wake(None, fx);
    }

    /// Work may be waiting at `priority` (any priority if `None`): every lane that may
    /// take it claims if it has free slots.
    pub(crate) fn wake(&mut self, priority: Option<i16>, fx: &mut Effects<H>) {
        for i in 0..self.lanes.len() {
            if priority.is_none_or(|p| self.lanes[i].spec.accepts(p)) {
                self.lanes[i].account.want();
                self.dispatch(i, fx);
            }
        }
    }

    /// Issues a claim for lane `i` if its accounting says so.
    pub(crate) fn dispatch(&mut self, i: LaneId, fx: &mut Effects<H>) {
        if !self.claiming || self.threads.usable() == 0 || self.held_for_target(i) {
            return;
        }
        let Some(mut limit) = self.lanes[i].account.begin_claim() else {
            return;
        };
        let mut floor = borrow_floor(&self.lanes, i);
        let lane = &mut self.lanes[i];
        if floor < lane.spec.lo && limit > lane.account.open_slots() {
            // Prefetched jobs are never more urgent than the lane's own range: a claim
            // that borrows asks only for the open slots, whose jobs start at once; with
            // no open slot it prefetches from its own range only.
            let open = lane
                .account
                .open_slots()
                .saturating_sub(lane.account.held());
            if open > 0 {
                limit = open;
                lane.account.narrow_claim(limit);
            } else {
                floor = lane.spec.lo;
            }
        }
        // One token per claim: (job id, token) identifies each run uniquely.
        let token = (self.tokens)();
        self.lanes[i].in_flight = Some(token);
        fx.claims.push(ClaimOrder {
            lane: i,
            limit,
            floor,
            token,
        });
    }

    /// Lane `i`'s claim under `token` returned: its jobs (`Ok`), or nothing (`Err`: the
    /// database did not answer; the lane tries again at the next poll).
    pub(crate) fn claim_returned<L>(
        &mut self,
        i: LaneId,
        token: i64,
        result: Result<Vec<J>, ()>,
        launcher: &mut L,
        now: Instant,
        fx: &mut Effects<H>,
    ) where
        L: Launcher<J, Handle = H>,
    {
        let lane = &mut self.lanes[i];
        if lane.in_flight != Some(token) {
            // Not the claim this lane is waiting for (cannot happen: one per lane): take
            // nothing from it, and leave the accounting alone.
            for job in result.into_iter().flatten() {
                fx.outcomes.push((
                    RunKey {
                        job: job.id(),
                        token,
                    },
                    Action::Release,
                ));
            }
            return;
        }
        lane.in_flight = None;
        if lane.target.is_some() {
            // Lanes that held their claims for this one may claim again.
            for l in &mut self.lanes {
                l.refill |= l.share < 1.0;
            }
        }
        let lane = &mut self.lanes[i];
        // Pauses waiting for this claim are answered now: its jobs are handed back below.
        fx.replies.append(&mut lane.pause_waiters);
        let asked = lane.account.reserved();
        let Ok(jobs) = result else {
            self.gate.set(i, false);
            lane.account.fail_claim();
            self.check_quiet(fx);
            return;
        };
        let got = jobs.len() as u32;
        // What starts now: the open slots (runs may have ended while the claim was in
        // flight), after any jobs held from before; the rest of a prefetching lane's
        // claim is held ready. A lane without prefetch starts everything it claimed.
        let open = if lane.account.prefetch() == 0 {
            u32::MAX
        } else {
            lane.account
                .open_slots()
                .saturating_sub(lane.account.held())
        };
        // Full and out of slots: it claims again as soon as one frees, so an enqueue for
        // this lane need not NOTIFY (see `NotifyGate`).
        let full = got == asked && asked > 0;
        self.gate.set(i, full && !lane.account.paused());
        lane.account.end_claim(asked, got);
        if self.shutdown.is_some() || lane.account.paused() {
            // The claim was in flight when shutdown began or the lane was paused: hand
            // its jobs straight back (attempt given back), so that nothing starts once
            // `Shutdown` or `Pause` has been answered.
            for job in jobs {
                self.hand_back(
                    i,
                    RunKey {
                        job: job.id(),
                        token,
                    },
                    fx,
                );
            }
            self.check_quiet(fx);
            return;
        }
        // At most one rescued job runs here at a time, so a poison pill that kills this
        // process cannot take other rescued jobs down with it again and again until they
        // too are failed as poison pills. The claim skips rescued jobs while one runs;
        // this catches a claim that returned two, or two lanes that claimed one each.
        let mut rescued_here = self.rescued_running > 0 || self.held.is_some();
        let mut candidate = None;
        let extras_before = fx.hand_backs_before_start.len();
        for (n, job) in jobs.into_iter().enumerate() {
            let key = RunKey {
                job: job.id(),
                token,
            };
            let in_slot = (n as u32) < open;
            if !job.rescued() {
                if in_slot {
                    self.start(i, key, job, launcher, now, fx);
                } else {
                    self.hold_ready(i, key, job);
                }
            } else if rescued_here || !in_slot {
                // A rescued job is never held ready: it goes back like the extras.
                self.lanes[i].account.finish();
                fx.hand_backs_before_start.push(key);
            } else {
                rescued_here = true;
                candidate = Some(job);
            }
        }
        if fx.hand_backs_before_start.len() == extras_before {
            if let Some(job) = candidate {
                let key = RunKey {
                    job: job.id(),
                    token,
                };
                self.start(i, key, job, launcher, now, fx);
            }
        } else if let Some(job) = candidate {
            // If the candidate is a poison pill and kills the process before the
            // hand-back is written, the extras would be rescued again and wrongly
            // counted as crashing their worker: it starts once they are written.
            self.held = Some(Held {
                lane: i,
                token,
                job,
            });
        } else {
            // No candidate waits for them (a rescued job already runs): plain hand-backs.
            let extras = fx.hand_backs_before_start.drain(extras_before..);
            fx.outcomes.extend(extras.map(|key| (key, Action::Release)));
        }
        self.start_ready(launcher, now, fx);
        self.dispatch(i, fx);
        self.after_slots_freed(fx);
    }

    /// The hand-back written before the held rescued job may start is done (`written`),
    /// or failed (the completer retries it): start the held job, or, failing that or if
    /// its lane stopped meanwhile, hand it back too.
    pub(crate) fn hand_back_written<L>(
        &mut self,
        written: bool,
        launcher: &mut L,
        now: Instant,
        fx: &mut Effects<H>,
    ) where
        L: Launcher<J, Handle = H>,
    {
        let Some(Held { lane, token, job }) = self.held.take() else {
            return;
        };
        let key = RunKey {
            job: job.id(),
            token,
        };
        let stopped = self.shutdown.is_some() || self.lanes[lane].account.paused();
        if written && !stopped {
            self.start(lane, key, job, launcher, now, fx);
        } else {
            self.hand_back(lane, key, fx);
        }
        self.after_slots_freed(fx);
    }

    /// Starts a claimed job (its slot is already counted as running).
    pub(super) fn start<L>(
        &mut self,
        i: LaneId,
        key: RunKey,
        job: J,
        launcher: &mut L,
        now: Instant,
        fx: &mut Effects<H>,
    ) where
        L: Launcher<J, Handle = H>,
    {
        let rescued = job.rescued();
        let Some((handle, facts)) = launcher.launch(&self.lanes[i].spec, key, job) else {
            // Its kind is not registered here (claims ask only for registered kinds, so
            // only a changed registry gets here): hand it back rather than lose it.
            self.hand_back(i, key, fx);
            return;
        };
        self.lanes[i].record_start(facts.waited);
        if rescued {
            self.rescued_running += 1;
        }
        self.runs.insert(
            key,
            Run {
                lane: i,
                facts,
                launched_at: now,
                deadline: now + facts.timeout,
                started: false,
                lease_lost: false,
                rescued,
                cancelling: false,
                stuck: false,
                generation: self.threads.generation(),
                handle: Some(handle),
            },
        );
    }

    /// Frees the slot of a claimed job that will not run here and returns the job to
    /// `available` with its attempt given back.
    pub(super) fn hand_back(&mut self, i: LaneId, key: RunKey, fx: &mut Effects<H>) {
        self.lanes[i].account.finish();
        self.lanes[i].refill = true;
        fx.outcomes.push((key, Action::Release));
    }

    /// Slots came free: during shutdown, see whether all is quiet; otherwise refill
    /// the lanes that lost runs.
    pub(super) fn after_slots_freed(&mut self, fx: &mut Effects<H>) {
        if self.shutdown.is_some() {
            self.check_quiet(fx);
            for lane in &mut self.lanes {
                lane.refill = false;
            }
            return;
        }
        for i in 0..self.lanes.len() {
            if std::mem::take(&mut self.lanes[i].refill) {
                self.dispatch(i, fx);
            }
        }
    }
}

//! The supervisor's inbox handlers: each turns an event from a child into a core call
//! and carries out the result.

use std::time::{Instant, SystemTime};

use actix::prelude::*;

use super::inbox::{
    CancelRequested, ClaimReturned, JobsAvailable, LaneNow, LanesNow, LeasesLost, ListenerChanged,
    RunsEnded, SchemaVerified, SnapshotLanes, WakeLanes,
};
use super::JobSupervisor;
use crate::stats::ListenerMode;

impl Handler<JobsAvailable> for JobSupervisor {
    type Result = ();

    fn handle(&mut self, msg: JobsAvailable, ctx: &mut Context<Self>) {
        self.listener.last_notification = Some(SystemTime::now());
        self.core.wake(msg.priority, &mut self.fx);
        self.carry_out(ctx);
    }
}

impl Handler<WakeLanes> for JobSupervisor {
    type Result = ();

    fn handle(&mut self, msg: WakeLanes, ctx: &mut Context<Self>) {
        self.core.wake(msg.priority, &mut self.fx);
        self.carry_out(ctx);
    }
}

impl Handler<ListenerChanged> for JobSupervisor {
    type Result = ();

    fn handle(&mut self, msg: ListenerChanged, ctx: &mut Context<Self>) {
        if msg.up {
            self.listener.mode = ListenerMode::Notify;
            self.listener.connects += 1;
            // Catch up on anything enqueued while we were not listening.
            self.core.wake(None, &mut self.fx);
            self.carry_out(ctx);
        } else {
            self.listener.mode = ListenerMode::PollOnly;
            self.listener.last_error = msg.error;
        }
    }
}

impl Handler<ClaimReturned> for JobSupervisor {
    type Result = ();

    fn handle(&mut self, msg: ClaimReturned, ctx: &mut Context<Self>) {
        let result = msg.result.map_err(|_| ());
        if result.as_ref().is_ok_and(|jobs| !jobs.is_empty()) {
            self.core.claim_took(msg.lane, msg.took, Instant::now());
        }
        let mut launch = Self::launcher(&self.runs, &self.settings, &mut self.run_metrics);
        self.core.claim_returned(
            msg.lane,
            msg.token,
            result,
            &mut launch,
            Instant::now(),
            &mut self.fx,
        );
        self.carry_out(ctx);
    }
}

impl Handler<RunsEnded> for JobSupervisor {
    type Result = ();

    fn handle(&mut self, _: RunsEnded, ctx: &mut Context<Self>) {
        self.runs.ended.take(&mut self.ended_buf);
        self.runs
            .signals
            .forget(self.ended_buf.iter().map(|(k, _)| *k));
        let mut launch = Self::launcher(&self.runs, &self.settings, &mut self.run_metrics);
        self.core.runs_ended(
            self.ended_buf.drain(..),
            &mut launch,
            Instant::now(),
            &mut self.fx,
        );
        self.carry_out(ctx);
    }
}

impl Handler<LeasesLost> for JobSupervisor {
    type Result = ();

    fn handle(&mut self, msg: LeasesLost, _: &mut Context<Self>) {
        self.core.leases_lost(msg.0);
    }
}

impl Handler<CancelRequested> for JobSupervisor {
    type Result = ();

    fn handle(&mut self, msg: CancelRequested, _: &mut Context<Self>) {
        let now = Instant::now();
        for key in msg.0 {
            // Only runs of this process, under that very lease token: the core
            // answers false for anything else (another attempt, another worker).
            if self.core.cancel_requested(key, now) {
                self.runs.signals.signal(key);
                tracing::info!(job = key.job, "cancel requested: handler told");
            }
        }
    }
}

impl Handler<SchemaVerified> for JobSupervisor {
    type Result = ();

    fn handle(&mut self, _: SchemaVerified, ctx: &mut Context<Self>) {
        self.core.enable_claims(&mut self.fx);
        self.carry_out(ctx);
    }
}

impl Handler<SnapshotLanes> for JobSupervisor {
    type Result = LanesNow;

    fn handle(&mut self, _: SnapshotLanes, _: &mut Context<Self>) -> LanesNow {
        LanesNow {
            lanes: self
                .core
                .lanes()
                .iter()
                .map(|l| LaneNow {
                    name: l.spec.name.to_string(),
                    lo: l.spec.lo,
                    hi: l.spec.hi,
                    slots: l.account.slots(),
                    running: l.account.running(),
                    paused: l.account.paused(),
                })
                .collect(),
            listener: match self.listener.mode {
                ListenerMode::Notify => "notify",
                ListenerMode::PollOnly => "poll",
            },
            database_ok: self.store.unavailable().is_none(),
        }
    }
}

//! The supervisor's public message handlers: enqueue, lane tuning, stats, shutdown.

use actix::prelude::*;
use tokio::sync::oneshot;

use super::{stop_helpers, JobSupervisor, ShutdownState};
use crate::actor::completer::{Drain, Outcome};
use crate::actor::listener::DropSubscription;
use crate::control::{Cancel, Pause, Resume, SetConcurrency, Shutdown, ShutdownReport, Stats};
use crate::enqueue::Enqueue;
use crate::error::{Error, Result};
use crate::job::Job;
use crate::outcome::Action;
use crate::stats::{summarize, EngineStats, LaneStats};
use crate::store::OutcomeRow;

impl<J: Job> Handler<Enqueue<J>> for JobSupervisor {
    type Result = ResponseActFuture<Self, Result<i64>>;

    fn handle(&mut self, msg: Enqueue<J>, _: &mut Context<Self>) -> Self::Result {
        let store = self.store.clone();
        let validated = msg.validate();
        let backlog = self.backlog.clone();
        Box::pin(
            async move {
                let job = validated?;
                let notify = backlog.needs_notify_for(std::slice::from_ref(&job));
                let id = store.enqueue_one(&job, notify).await?;
                Ok((
                    id,
                    job.priority,
                    job.run_at.is_none() && job.delay_s.is_none(),
                ))
            }
            .into_actor(self)
            .map(|result: Result<(i64, i16, bool)>, act, ctx| {
                let (id, priority, due) = result?;
                // Wake our own lanes now rather than after the NOTIFY round trip.
                if due {
                    act.wake(ctx, Some(priority));
                }
                Ok(id)
            }),
        )
    }
}

impl Handler<Pause> for JobSupervisor {
    type Result = ResponseFuture<Result<()>>;

    fn handle(&mut self, msg: Pause, _: &mut Context<Self>) -> Self::Result {
        let Some(i) = self.lane_index(&msg.0) else {
            return Box::pin(std::future::ready(Err(Error::UnknownLane(msg.0))));
        };
        self.lanes[i].account.pause();
        // A paused lane will not claim: enqueues for it must wake other processes.
        self.backlog.set(i, false);
        // Answer only once a claim already in flight has returned (its jobs are handed
        // back, see `claimed`): from then on, no job enqueued can be taken by this lane.
        let in_flight = self.claim_returned(i);
        Box::pin(async move {
            if let Some(rx) = in_flight {
                let _ = rx.await;
            }
            Ok(())
        })
    }
}

impl Handler<Resume> for JobSupervisor {
    type Result = Result<()>;

    fn handle(&mut self, msg: Resume, ctx: &mut Context<Self>) -> Result<()> {
        let i = self.lane_index(&msg.0).ok_or(Error::UnknownLane(msg.0))?;
        self.lanes[i].account.resume();
        self.dispatch(ctx, i);
        Ok(())
    }
}

impl Handler<SetConcurrency> for JobSupervisor {
    type Result = Result<()>;

    fn handle(&mut self, msg: SetConcurrency, ctx: &mut Context<Self>) -> Result<()> {
        let i = self
            .lane_index(&msg.lane)
            .ok_or(Error::UnknownLane(msg.lane.clone()))?;
        if msg.slots == 0 {
            return Err(Error::InvalidConfig(format!(
                "lane `{}`: concurrency must be at least 1 (use Pause to stop a lane)",
                msg.lane
            )));
        }
        self.lanes[i].account.set_slots(msg.slots);
        self.lane_config[i].concurrency = msg.slots;
        self.dispatch(ctx, i);
        Ok(())
    }
}

impl Handler<Cancel> for JobSupervisor {
    type Result = ResponseFuture<Result<bool>>;

    fn handle(&mut self, msg: Cancel, _: &mut Context<Self>) -> Self::Result {
        let store = self.store.clone();
        Box::pin(async move { store.cancel(msg.0).await })
    }
}

impl Handler<Stats> for JobSupervisor {
    type Result = ResponseActFuture<Self, Result<EngineStats>>;

    fn handle(&mut self, _: Stats, _: &mut Context<Self>) -> Self::Result {
        let mut out = EngineStats {
            lanes: self
                .lanes
                .iter()
                .zip(&self.lane_config)
                .map(|(l, lane)| LaneStats {
                    name: l.name.to_string(),
                    priorities: lane.range(),
                    concurrency: l.account.slots(),
                    running: l.account.running(),
                    paused: l.account.paused(),
                    started: l.started,
                    total_wait: l.total_wait,
                    max_wait: l.max_wait,
                    ..Default::default()
                })
                .collect(),
            listener: self.listener.clone(),
            database: crate::stats::DatabaseStats {
                available: self.store.unavailable().is_none(),
                last_error: self.store.unavailable(),
                schema_verified: self.schema_verified,
            },
            started: self.started_total,
            connections: self
                .store
                .connection_stats(self.listener.mode == crate::stats::ListenerMode::Notify),
            ..Default::default()
        };
        (out.claim_times, out.outcome_times) = self.store.statement_times();
        let lanes = self.lane_config.clone();
        let kinds = self.kinds.clone();
        let store = self.store.clone();
        let queue = self.settings.queue.clone();
        Box::pin(
            async move {
                // Local figures are still worth reporting when the database is not.
                match store.stats(&queue).await {
                    Ok((live, finished)) => summarize(&lanes, &kinds, &live, &finished, &mut out),
                    Err(e) => {
                        out.database.available = false;
                        out.database.last_error = Some(e.to_string());
                    }
                }
                Ok(out)
            }
            .into_actor(self),
        )
    }
}

/// Forwards the fault-injection hook to the listener (see [`DropSubscription`]).
impl Handler<DropSubscription> for JobSupervisor {
    type Result = ResponseFuture<bool>;

    fn handle(&mut self, msg: DropSubscription, _: &mut Context<Self>) -> Self::Result {
        let listener = self.listener_addr.clone();
        Box::pin(async move {
            match listener {
                Some(l) => l.send(msg).await.unwrap_or(false),
                None => false,
            }
        })
    }
}

impl Handler<Shutdown> for JobSupervisor {
    type Result = ResponseActFuture<Self, Result<ShutdownReport>>;

    fn handle(&mut self, msg: Shutdown, _: &mut Context<Self>) -> Self::Result {
        let grace = msg.grace.unwrap_or(self.settings.shutdown_grace);
        if self.shutdown.is_none() {
            tracing::info!(
                running = self.running.len(),
                ?grace,
                "shutting down: no more claims"
            );
            for lane in &mut self.lanes {
                lane.account.drain();
            }
            for i in 0..self.lanes.len() {
                self.backlog.set(i, false);
            }
            stop_helpers(self);
            self.shutdown = Some(ShutdownState {
                running_at_start: self.running.len(),
                waiters: Vec::new(),
            });
        }
        let (tx, rx) = oneshot::channel();
        if let Some(s) = self.shutdown.as_mut() {
            s.waiters.push(tx);
        }
        self.check_quiet();
        let drain_timeout = self.settings.call_timeout * 2;
        Box::pin(
            async move {
                let _ = tokio::time::timeout(grace, rx).await;
            }
            .into_actor(self)
            .then(move |_, act, _| {
                // Past the grace period: hand unfinished jobs back without using an attempt.
                let released = act.running.len();
                for (key, run) in act.running.drain() {
                    run.abort.abort();
                    act.completer.do_send(Outcome(OutcomeRow { id: key.0, token: key.1, action: Action::Release }));
                }
                if released > 0 {
                    tracing::warn!(released, "grace period over: returned unfinished jobs to the queue");
                }
                let at_start = act.shutdown.as_ref().map_or(0, |s| s.running_at_start);
                let report = ShutdownReport { finished: at_start.saturating_sub(released), released };
                let completer = act.completer.clone();
                async move { completer.send(Drain { timeout: drain_timeout }).await.unwrap_or(false) }
                    .into_actor(act)
                    .map(move |drained, _, ctx| {
                        if !drained {
                            tracing::warn!("shutdown: some outcomes could not be written; their leases will expire and the jobs will be rescued");
                        }
                        ctx.stop();
                        Ok(report)
                    })
            }),
        )
    }
}

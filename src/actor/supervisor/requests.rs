//! The supervisor's handlers for the applications' messages (except `Shutdown`): each
//! is a core call or one of the engine's shared operations.

use actix::prelude::*;

use super::JobSupervisor;
use crate::actor::listener::DropSubscription;
use crate::commands::{Cancel, Enqueue, Pause, Resume, Retry, SetConcurrency, Stats};
use crate::error::{Error, Result};
use crate::job::Job;
use crate::stats::{summarize, DatabaseStats, EngineStats, HandlerStats, LaneStats};

impl<J: Job> Handler<Enqueue<J>> for JobSupervisor {
    type Result = ResponseFuture<Result<i64>>;

    fn handle(&mut self, msg: Enqueue<J>, _: &mut Context<Self>) -> Self::Result {
        let ops = self.ops.clone();
        let job = msg.validate();
        Box::pin(async move { ops.enqueue(job?).await })
    }
}

impl Handler<Cancel> for JobSupervisor {
    type Result = ResponseFuture<Result<crate::CancelOutcome>>;

    fn handle(&mut self, msg: Cancel, _: &mut Context<Self>) -> Self::Result {
        let ops = self.ops.clone();
        Box::pin(async move { ops.cancel(msg.id, msg.reason.as_deref()).await })
    }
}

impl Handler<Retry> for JobSupervisor {
    type Result = ResponseFuture<Result<bool>>;

    fn handle(&mut self, msg: Retry, _: &mut Context<Self>) -> Self::Result {
        let ops = self.ops.clone();
        Box::pin(async move { ops.retry(msg.0).await })
    }
}

impl Handler<Pause> for JobSupervisor {
    type Result = ResponseFuture<Result<()>>;

    fn handle(&mut self, msg: Pause, ctx: &mut Context<Self>) -> Self::Result {
        let Some(i) = self.core.lane_id(&msg.0) else {
            return Box::pin(std::future::ready(Err(Error::UnknownLane(msg.0))));
        };
        // Answered only once a claim already in flight has returned (its jobs are handed
        // back): from then on, no job enqueued can start in this lane. Jobs the lane
        // held ready (prefetched) are handed back now.
        let in_flight = self.core.pause(i, &mut self.fx).map(|w| self.waiter(w));
        self.carry_out(ctx);
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
        let i = self.core.lane_id(&msg.0).ok_or(Error::UnknownLane(msg.0))?;
        self.core.resume(i, &mut self.fx);
        self.carry_out(ctx);
        Ok(())
    }
}

impl Handler<SetConcurrency> for JobSupervisor {
    type Result = Result<()>;

    fn handle(&mut self, msg: SetConcurrency, ctx: &mut Context<Self>) -> Result<()> {
        let i = self
            .core
            .lane_id(&msg.lane)
            .ok_or(Error::UnknownLane(msg.lane.clone()))?;
        if msg.slots == 0 {
            return Err(Error::InvalidConfig(format!(
                "lane `{}`: concurrency must be at least 1 (use Pause to stop a lane)",
                msg.lane
            )));
        }
        self.core.set_concurrency(i, msg.slots, &mut self.fx);
        self.carry_out(ctx);
        Ok(())
    }
}

impl Handler<Stats> for JobSupervisor {
    type Result = ResponseFuture<Result<EngineStats>>;

    fn handle(&mut self, _: Stats, _: &mut Context<Self>) -> Self::Result {
        self.collect_stats(true)
    }
}

/// The engine's statistics for its gauges: live jobs only. Finished jobs (the history,
/// millions of rows on a busy queue) and schedules are not counted: no gauge shows them,
/// and counting the history every few seconds took both cores of a small database
/// server for a tenth of a second each time (it was w6's urgent-latency tail).
#[derive(Debug, Clone, Copy)]
pub(crate) struct GaugeStats;

impl Message for GaugeStats {
    type Result = Result<EngineStats>;
}

impl Handler<GaugeStats> for JobSupervisor {
    type Result = ResponseFuture<Result<EngineStats>>;

    fn handle(&mut self, _: GaugeStats, _: &mut Context<Self>) -> Self::Result {
        self.collect_stats(false)
    }
}

impl JobSupervisor {
    /// Lane, state and listener statistics; with `history`, finished jobs by state and
    /// the schedules too.
    fn collect_stats(&mut self, history: bool) -> ResponseFuture<Result<EngineStats>> {
        let lanes = self.core.lanes();
        let threads = self.core.threads();
        let mut out = EngineStats {
            lanes: lanes
                .iter()
                .map(|l| LaneStats {
                    name: l.spec.name.to_string(),
                    priorities: (l.spec.lo, l.spec.hi),
                    concurrency: l.account.slots(),
                    running: l.account.running(),
                    prefetch: l.account.prefetch(),
                    target_wait: l.target.as_ref().map(|t| t.target()),
                    wait_p99: l.target.as_ref().and_then(|t| t.p99()),
                    throttle: l.share,
                    prefetched: l.account.held(),
                    stuck: l.stuck,
                    paused: l.account.paused(),
                    started: l.started,
                    total_wait: l.total_wait,
                    max_wait: l.max_wait,
                    ..Default::default()
                })
                .collect(),
            listener: self.listener.clone(),
            database: DatabaseStats {
                available: self.store.unavailable().is_none(),
                last_error: self.store.unavailable(),
                schema_verified: self.core.claiming(),
            },
            handlers: HandlerStats {
                threads: threads.per_runtime(),
                stuck_threads: threads.stuck(),
                max_stuck_threads: threads.cap(),
                usable_threads: threads.usable(),
                replaced: threads.replaced(),
            },
            started: lanes.iter().map(|l| l.started).sum(),
            connections: self
                .store
                .connection_stats(self.listener.mode == crate::stats::ListenerMode::Notify),
            ..Default::default()
        };
        (out.claim_times, out.outcome_times) = self.store.statement_times();
        let specs: Vec<_> = lanes.iter().map(|l| l.spec.clone()).collect();
        let kinds = self.runs.registry.kinds();
        let store = self.store.clone();
        let queue = self.settings.queue.clone();
        Box::pin(async move {
            // Local figures are still worth reporting when the database is not.
            match store.stats(&queue, history).await {
                Ok((live, finished)) => summarize(&specs, &kinds, &live, &finished, &mut out),
                Err(e) => {
                    out.database.available = false;
                    out.database.last_error = Some(e.to_string());
                }
            }
            if history && out.database.available {
                match store.list_schedules().await {
                    Ok(list) => out.schedules = list.into_iter().map(Into::into).collect(),
                    Err(e) => out.database.last_error = Some(e.to_string()),
                }
            }
            Ok(out)
        })
    }
}

/// Forwards the fault-injection hook to the listener (see [`DropSubscription`]).
impl Handler<DropSubscription> for JobSupervisor {
    type Result = ResponseFuture<bool>;

    fn handle(&mut self, msg: DropSubscription, _: &mut Context<Self>) -> Self::Result {
        let listener = self.children.listener.clone();
        Box::pin(async move {
            match listener {
                Some(l) => l.send(msg).await.unwrap_or(false),
                None => false,
            }
        })
    }
}

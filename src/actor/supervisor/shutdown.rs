//! Graceful shutdown: stop claiming, wait for quiet within the grace period, hand back
//! what is left, write every outcome, stop.

use actix::prelude::*;

use super::{stop_helpers, JobSupervisor};
use crate::actor::completer::Drain;
use crate::commands::{Shutdown, ShutdownReport};
use crate::error::Result;

impl Handler<Shutdown> for JobSupervisor {
    type Result = ResponseActFuture<Self, Result<ShutdownReport>>;

    fn handle(&mut self, msg: Shutdown, ctx: &mut Context<Self>) -> Self::Result {
        let grace = msg.grace.unwrap_or(self.settings.shutdown_grace);
        let (waiter, first) = self.core.shutdown(&mut self.fx);
        if first {
            tracing::info!(
                running = self.core.running(),
                ?grace,
                "shutting down: no more claims"
            );
            stop_helpers(self);
        }
        let quiet = self.waiter(waiter);
        self.carry_out(ctx);
        let drain_timeout = self.settings.call_timeout * 2;
        Box::pin(
            async move {
                let _ = tokio::time::timeout(grace, quiet).await;
            }
            .into_actor(self)
            .then(move |_, act, ctx| {
                // Past the grace period: hand unfinished jobs back without using an attempt.
                let counts = act.core.grace_over(&mut act.fx);
                act.carry_out(ctx);
                if counts.released > 0 {
                    tracing::warn!(
                        released = counts.released,
                        "grace period over: returned unfinished jobs to the queue"
                    );
                }
                let report = ShutdownReport {
                    finished: counts.finished,
                    released: counts.released,
                };
                let completer = act.children.completer.clone();
                async move {
                    match completer {
                        Some(c) => c.send(Drain { timeout: drain_timeout }).await.unwrap_or(false),
                        None => true,
                    }
                }
                .into_actor(act)
                .map(move |drained, _, ctx| {
                    if !drained {
                        tracing::warn!("shutdown: some outcomes could not be written; their leases will expire and the jobs will be rescued");
                    }
                    tracing::info!(
                        finished = report.finished,
                        released = report.released,
                        "pglane engine stopped"
                    );
                    ctx.stop();
                    Ok(report)
                })
            }),
        )
    }
}

//! Carrying out what the dispatch core decided: claims to the claimers, outcomes to the
//! completer, runs onto the handler runtime, renewals to leases, replies to waiters.

use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use actix::prelude::*;
use tokio::task::AbortHandle;

use super::{JobSupervisor, RunSetup};
use crate::actor::claimer::Claim;
use crate::actor::completer::{HandBack, Outcomes, WriteStuck};
use crate::actor::executor::{self, EndedRuns, Watch};
use crate::actor::leases::Renew;
use crate::dispatch::{Claimed, Launcher, RunFacts, RunKey, RunProbe, ThreadChange};
use crate::job::JobContext;
use crate::lane::LaneSpec;
use crate::outcome::Action;
use crate::store::{ClaimedJob, OutcomeRow};
use crate::telemetry::metrics::{RunLabels, RunMetrics};

impl Claimed for ClaimedJob {
    fn id(&self) -> i64 {
        self.id
    }

    fn rescued(&self) -> bool {
        self.rescues > 0
    }
}

/// Starts runs for the core on the current handler runtime.
pub(super) struct Launch<'a> {
    setup: &'a RunSetup,
    ended: &'a EndedRuns,
    default_timeout: Duration,
    metrics: &'a mut RunMetrics,
}

impl Launcher<ClaimedJob> for Launch<'_> {
    type Handle = AbortHandle;

    fn launch(
        &mut self,
        lane: &LaneSpec,
        key: RunKey,
        job: ClaimedJob,
    ) -> Option<(AbortHandle, RunFacts)> {
        let reg = self.setup.registry.get(&job.kind)?;
        let timeout = job
            .timeout_ms
            .map(|ms| Duration::from_millis(ms.max(1) as u64))
            .or(reg.timeout)
            .unwrap_or(self.default_timeout);
        let facts = RunFacts {
            kind: reg.kind,
            attempt: job.attempt,
            max_attempts: job.max_attempts,
            timeout,
            waited: SystemTime::now()
                .duration_since(job.run_at)
                .unwrap_or_default(),
        };
        let ctx = JobContext {
            id: job.id,
            kind: reg.kind,
            attempt: job.attempt,
            token: key.token,
            max_attempts: job.max_attempts,
            priority: job.priority,
            lane: lane.name.clone(),
            pool: self.setup.app_pool.clone(),
            data: self.setup.data.clone(),
            ops: self.setup.ops.clone(),
            queue: self.setup.queue.clone(),
            traceparent: job.traceparent.map(Arc::from),
            cancel: self.setup.signals.register(key),
        };
        let labels = RunLabels {
            lane: self.metrics.lane_index(&lane.name),
            kind: reg.kind,
        };
        self.metrics.started(labels, facts.waited);
        let watch = self.setup.handlers.watch();
        let handle = executor::spawn(
            &self.setup.target,
            watch,
            reg.runner.clone(),
            job.args,
            ctx,
            key,
            self.ended,
        );
        Some((handle, facts))
    }
}

/// The handler threads, as the core sees them at a tick.
struct Probe<'a>(&'a Arc<Watch>);

impl RunProbe for Probe<'_> {
    fn in_poll_since(&self, key: RunKey) -> Option<Instant> {
        self.0.in_poll_since(key)
    }

    fn revoke_unstarted(&mut self, key: RunKey) -> bool {
        self.0.revoke_unstarted(key)
    }
}

fn row((key, action): (RunKey, Action)) -> OutcomeRow {
    OutcomeRow {
        id: key.job,
        token: key.token,
        action,
        labels: None,
    }
}

impl JobSupervisor {
    /// A launcher for core calls that may start runs. Takes the fields it needs, so the
    /// core (another field) can be borrowed mutably alongside.
    pub(super) fn launcher<'a>(
        runs: &'a RunSetup,
        settings: &crate::config::Settings,
        metrics: &'a mut RunMetrics,
    ) -> Launch<'a> {
        Launch {
            setup: runs,
            ended: &runs.ended,
            default_timeout: settings.job_timeout,
            metrics,
        }
    }

    /// Timeouts, stuck threads, runs that never started, renewals; and retired handler
    /// runtimes with nothing but stuck runs left are shut down.
    pub(super) fn tick(&mut self, ctx: &mut Context<Self>) {
        let watch = self.runs.handlers.watch().clone();
        watch.take_started(&mut self.started_buf);
        self.core.runs_started(self.started_buf.drain(..));
        let mut launch = Self::launcher(&self.runs, &self.settings, &mut self.run_metrics);
        self.core.tick(
            Instant::now(),
            &mut Probe(&watch),
            &mut launch,
            &mut self.fx,
        );
        self.runs.signals.prune();
        self.carry_out(ctx);
        let core = &self.core;
        self.runs.handlers.shut_down_drained(|g| core.stuck_on(g));
    }

    /// Carries out everything the last core call decided.
    pub(super) fn carry_out(&mut self, ctx: &mut Context<Self>) {
        if self.fx.is_empty() {
            return;
        }
        for order in self.fx.claims.drain(..) {
            self.children.claimers[order.lane].do_send(Claim::from(order));
        }
        if let Some(completer) = &self.children.completer {
            if !self.fx.outcomes.is_empty() {
                let mut rows: Vec<OutcomeRow> = self.fx.outcomes.drain(..).map(row).collect();
                let now = Instant::now();
                let lanes = self.core.lanes();
                for end in self.fx.ended.drain(..) {
                    let labels = RunLabels {
                        lane: end.lane as u16,
                        kind: end.facts.kind,
                    };
                    self.run_metrics
                        .ended(labels, now.saturating_duration_since(end.launched_at));
                    let r = &mut rows[end.outcome];
                    r.labels = Some(labels);
                    self.run_log
                        .ended(now, &lanes[end.lane].spec.name, &end, &r.action);
                }
                completer.do_send(Outcomes(rows));
            }
            if !self.fx.hand_backs_before_start.is_empty() {
                let rows = self
                    .fx
                    .hand_backs_before_start
                    .drain(..)
                    .map(|key| row((key, Action::Release)))
                    .collect();
                completer
                    .send(HandBack(rows))
                    .into_actor(self)
                    .map(|written, act, ctx| {
                        let mut launch =
                            Self::launcher(&act.runs, &act.settings, &mut act.run_metrics);
                        act.core.hand_back_written(
                            written.unwrap_or(false),
                            &mut launch,
                            Instant::now(),
                            &mut act.fx,
                        );
                        act.carry_out(ctx);
                    })
                    .spawn(ctx);
            }
        }
        for handle in self.fx.aborts.drain(..) {
            handle.abort();
        }
        for stuck in self.fx.stuck.drain(..) {
            let lane = &self.core.lanes()[stuck.lane].spec.name;
            tracing::error!(
                job = stuck.key.job,
                kind = stuck.kind,
                lane = %lane,
                attempt = stuck.attempt,
                timeout = ?stuck.timeout,
                blocked_for = ?stuck.blocked_for,
                "handler thread stuck: the job is past its timeout and still blocking its \
                 thread (a blocking call in async code?); its slot is held until the call \
                 returns, the thread is written off, and the attempt is recorded as `stuck`"
            );
            if let Some(completer) = &self.children.completer {
                completer.do_send(WriteStuck(stuck));
            }
        }
        if !self.fx.renewals.is_empty() {
            let keys = std::mem::take(&mut self.fx.renewals);
            if let Some(leases) = &self.children.leases {
                leases.do_send(Renew(keys));
            }
        }
        for w in self.fx.replies.drain(..) {
            if let Some(tx) = self.waiters.remove(&w) {
                let _ = tx.send(());
            }
        }
        if let Some(change) = self.fx.threads.take() {
            self.threads_changed(change);
        }
    }

    fn threads_changed(&mut self, change: ThreadChange) {
        let t = self.core.threads();
        let (stuck, cap) = (t.stuck(), t.cap());
        match change {
            ThreadChange::Replace => match self.runs.handlers.replace() {
                Ok(target) => {
                    let generation = target.generation;
                    self.runs.target = target;
                    tracing::warn!(
                        stuck,
                        generation,
                        max_stuck_threads = cap,
                        "started fresh handler threads for new runs; the stuck thread is \
                         written off"
                    );
                }
                Err(e) => tracing::error!(error = %e,
                    "could not start fresh handler threads; runs go on with fewer"),
            },
            ThreadChange::Reduced { usable } => tracing::error!(
                stuck,
                max_stuck_threads = cap,
                usable,
                "capacity reduced: max_stuck_threads reached, stuck handler threads are \
                 no longer replaced (at 0 usable threads nothing is claimed)"
            ),
            ThreadChange::Freed => {
                tracing::info!(stuck, "a stuck handler thread came free")
            }
        }
    }
}

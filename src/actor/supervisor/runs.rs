//! Runs: starting claimed jobs on the handler runtime, settling them when they finish
//! or time out, and keeping their leases alive.

use std::time::{Duration, Instant, SystemTime};

use actix::prelude::*;

use super::{JobSupervisor, Running};
use crate::actor::completer::{Outcome, Outcomes};
use crate::actor::executor::{self, Finished, RunKey, RunsFinished};
use crate::job::JobContext;
use crate::outcome::{decide, Action, FailureCause, RunResult};
use crate::store::{ClaimedJob, OutcomeRow};

impl JobSupervisor {
    /// Frees the slot of a claimed job that will not run here and returns the job to
    /// `available` with its attempt given back.
    pub(super) fn hand_back(&mut self, i: usize, token: i64, id: i64) {
        self.lanes[i].account.finish();
        self.completer.do_send(Outcome(OutcomeRow {
            id,
            token,
            action: Action::Release,
        }));
    }

    /// Hands `extras` (rescued jobs this process must not run alongside another one)
    /// back, and starts `candidate` only once the hand-back is written: if the candidate
    /// is a poison pill and kills the process first, jobs still held here would be
    /// rescued again and wrongly counted as crashing their worker.
    pub(super) fn release_then_start(
        &mut self,
        ctx: &mut Context<Self>,
        i: usize,
        token: i64,
        extras: Vec<ClaimedJob>,
        candidate: Option<ClaimedJob>,
    ) {
        let rows: Vec<OutcomeRow> = extras
            .iter()
            .map(|job| {
                self.lanes[i].account.finish();
                OutcomeRow {
                    id: job.id,
                    token,
                    action: Action::Release,
                }
            })
            .collect();
        let store = self.store.clone();
        self.deferred_starts += 1;
        async move { (store.write_outcomes(&rows).await, rows) }
            .into_actor(self)
            .map(move |(written, rows), act, ctx| {
                act.deferred_starts -= 1;
                if written.is_err() {
                    // Not written (database trouble): the completer retries them.
                    act.completer.do_send(Outcomes(rows));
                }
                match candidate {
                    Some(job) if written.is_ok() && act.shutdown.is_none() => {
                        act.start_run(ctx, i, token, job);
                    }
                    Some(job) => {
                        // Rather than risk it, hand the candidate back too.
                        act.hand_back(i, token, job.id);
                    }
                    None => {}
                }
                act.check_quiet();
            })
            .spawn(ctx);
    }

    pub(super) fn start_run(
        &mut self,
        ctx: &mut Context<Self>,
        i: usize,
        token: i64,
        job: ClaimedJob,
    ) {
        let finished = self.finished_queue(ctx);
        let key = (job.id, token);
        let Some(reg) = self.registry.get(&job.kind) else {
            // INVARIANT-ish: claims filter on registered kinds, so this is unreachable
            // unless the registry changed; hand the job back rather than lose it.
            self.hand_back(i, token, job.id);
            return;
        };
        let timeout = job
            .timeout_ms
            .map(|ms| Duration::from_millis(ms.max(1) as u64))
            .or(reg.timeout)
            .unwrap_or(self.settings.job_timeout);
        let lane = &mut self.lanes[i];
        let waited = SystemTime::now()
            .duration_since(job.run_at)
            .unwrap_or_default();
        lane.started += 1;
        lane.total_wait += waited;
        lane.max_wait = lane.max_wait.max(waited);
        self.started_total += 1;
        let jctx = JobContext {
            id: job.id,
            kind: reg.kind,
            attempt: job.attempt,
            token,
            max_attempts: job.max_attempts,
            priority: job.priority,
            lane: lane.name.clone(),
            pool: self.app_pool.clone(),
            data: self.data.clone(),
        };
        let abort = executor::spawn(
            &self.handlers,
            reg.runner.clone(),
            job.args,
            jctx,
            key,
            finished,
        );
        self.running.insert(
            key,
            Running {
                lane: i,
                attempt: job.attempt,
                max_attempts: job.max_attempts,
                kind: reg.kind,
                deadline: Instant::now() + timeout,
                abort,
                lease_lost: false,
                rescued: job.rescues > 0,
            },
        );
    }

    /// The queue handlers report finished runs on (created on first use).
    pub(super) fn finished_queue(&mut self, ctx: &mut Context<Self>) -> Finished {
        self.finished
            .get_or_insert_with(|| Finished::new(ctx.address().recipient()))
            .clone()
    }

    /// A run ended: free its slot and decide its outcome. Returns the lane and the
    /// outcome to write, or `None` for the late outcome of a run already written off.
    pub(super) fn settle_run(
        &mut self,
        key: RunKey,
        result: RunResult,
    ) -> Option<(usize, OutcomeRow)> {
        let Some(run) = self.running.remove(&key) else {
            // Already timed out and written off: this late outcome is fenced off here,
            // and the database fence would reject it anyway.
            tracing::debug!(job = key.0, "ignoring the late outcome of a timed-out run");
            return None;
        };
        self.lanes[run.lane].account.finish();
        let action = decide(
            result,
            run.attempt,
            run.max_attempts,
            &self.settings.retry_backoff,
        );
        Some((
            run.lane,
            OutcomeRow {
                id: key.0,
                token: key.1,
                action,
            },
        ))
    }

    /// Settles one run, writes its outcome and refills its lane.
    pub(super) fn finish_run(&mut self, ctx: &mut Context<Self>, key: RunKey, result: RunResult) {
        if let Some((lane, outcome)) = self.settle_run(key, result) {
            self.completer.do_send(Outcome(outcome));
            self.after_finish(ctx, &[lane]);
        }
    }

    pub(super) fn after_finish(&mut self, ctx: &mut Context<Self>, lanes: &[usize]) {
        if self.shutdown.is_some() {
            self.check_quiet();
        } else {
            for &lane in lanes {
                self.dispatch(ctx, lane);
            }
        }
    }

    /// Writes off runs past their deadline: the task is aborted (a handler that never
    /// yields cannot be stopped, but it no longer holds a slot or a lease), the attempt
    /// is recorded as a timeout, and its slot is reused.
    pub(super) fn expire_overdue(&mut self, ctx: &mut Context<Self>) {
        let now = Instant::now();
        let overdue: Vec<RunKey> = self
            .running
            .iter()
            .filter(|(_, r)| r.deadline <= now)
            .map(|(k, _)| *k)
            .collect();
        for key in overdue {
            if let Some(run) = self.running.get(&key) {
                run.abort.abort();
                tracing::warn!(
                    job = key.0,
                    kind = run.kind,
                    attempt = run.attempt,
                    "job timed out; its slot is freed and a late outcome will be ignored"
                );
            }
            let result = RunResult::Failed {
                error: "timed out".into(),
                cause: FailureCause::Timeout,
            };
            self.finish_run(ctx, key, result);
        }
    }

    pub(super) fn renew_leases(&mut self, ctx: &mut Context<Self>) {
        let (ids, tokens): (Vec<i64>, Vec<i64>) = self
            .running
            .iter()
            .filter(|(_, r)| !r.lease_lost)
            .map(|(k, _)| *k)
            .unzip();
        if ids.is_empty() {
            return;
        }
        let store = self.store.clone();
        let lease_ms = self.settings.lease.as_secs_f64() * 1000.0;
        async move {
            let kept = store.renew(&ids, &tokens, lease_ms).await;
            (ids, tokens, kept)
        }
        .into_actor(self)
        .map(|(ids, tokens, kept), act, _| match kept {
            Ok(kept) => {
                for key in ids
                    .into_iter()
                    .zip(tokens)
                    .filter(|(id, _)| !kept.contains(id))
                {
                    if let Some(run) = act.running.get_mut(&key) {
                        run.lease_lost = true;
                        tracing::warn!(
                            job = key.0,
                            "lease lost while running; its outcome will be fenced off"
                        );
                    }
                }
            }
            Err(e) => tracing::warn!(error = %e, "could not renew leases; retrying next interval"),
        })
        .spawn(ctx);
    }
}

impl Handler<RunsFinished> for JobSupervisor {
    type Result = ();

    fn handle(&mut self, _: RunsFinished, ctx: &mut Context<Self>) {
        let Some(queue) = self.finished.clone() else {
            return;
        };
        let runs = queue.take();
        let mut outcomes = Vec::with_capacity(runs.len());
        let mut lanes: Vec<usize> = Vec::new();
        for (key, result) in runs {
            if let Some((lane, outcome)) = self.settle_run(key, result) {
                outcomes.push(outcome);
                if !lanes.contains(&lane) {
                    lanes.push(lane);
                }
            }
        }
        if !outcomes.is_empty() {
            self.completer.do_send(Outcomes(outcomes));
        }
        self.after_finish(ctx, &lanes);
    }
}

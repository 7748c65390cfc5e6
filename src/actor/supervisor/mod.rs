//! The JobSupervisor: keeps the lanes' slot accounting, dispatches claims, starts runs,
//! enforces timeouts, renews leases, and forwards outcomes to the completer.
//!
//! Claims are dispatched only when a lane has free slots *and* work may exist: a
//! notification, a poll tick, a full previous claim, or a (re)connected listener. At most
//! one claim per lane is in flight; hints that arrive meanwhile are served when it
//! returns, which also batches claims naturally under load.

mod control;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use actix::prelude::*;
use tokio::sync::oneshot;

use crate::actor::claimer::{Claim, Claimer};
use crate::actor::completer::{Completer, Outcome, Outcomes};
use crate::actor::executor::{self, Finished, HandlerRuntime, RunKey, RunsFinished};
use crate::actor::listener::{JobsAvailable, Listener, ListenerChanged, StopListener};
use crate::actor::maintenance::{Maintenance, StopMaintenance};
use crate::actor::LogLimiter;
use crate::backoff::jittered;
use crate::config::Settings;
use crate::error::Result;
use crate::job::{DataMap, JobContext, Registry};
use crate::lane::{Lane, LaneAccount};
use crate::outcome::{decide, Action, FailureCause, RunResult};
use crate::stats::{ListenerMode, ListenerStats};
use crate::store::{ClaimedJob, OutcomeRow, Pool, Store};

/// The actor applications talk to: send it [`Enqueue`](crate::Enqueue),
/// [`Pause`](crate::Pause), [`Resume`](crate::Resume),
/// [`SetConcurrency`](crate::SetConcurrency), [`Cancel`](crate::Cancel),
/// [`Stats`](crate::Stats) and [`Shutdown`](crate::Shutdown). Get its address from
/// [`Engine::supervisor`](crate::Engine::supervisor).
pub struct JobSupervisor {
    settings: Arc<Settings>,
    store: Store,
    app_pool: Pool,
    registry: Arc<Registry>,
    kinds: Arc<Vec<String>>,
    data: Arc<DataMap>,
    lanes: Vec<LaneSlot>,
    /// The lanes' configured ranges, for borrowing decisions.
    lane_config: Vec<Lane>,
    running: HashMap<RunKey, Running>,
    completer: Addr<Completer>,
    handlers: Arc<HandlerRuntime>,
    listener: ListenerStats,
    listener_addr: Option<Addr<Listener>>,
    maintenance_addr: Option<Addr<Maintenance>>,
    listener_config: tokio_postgres::Config,
    started_total: u64,
    shutdown: Option<ShutdownState>,
    claim_log: LogLimiter,
    /// Where handlers report finished runs.
    finished: Option<Finished>,
    /// Claimed rescued jobs waiting for a hand-back to be written before they start.
    deferred_starts: usize,
    /// Whether the schema version was checked; false only when the database was
    /// unavailable at start. No claims until it is.
    schema_verified: bool,
    schema_check_in_flight: bool,
}

struct LaneSlot {
    lane: Lane,
    name: Arc<str>,
    account: LaneAccount,
    claimer: Addr<Claimer>,
    started: u64,
    total_wait: Duration,
    max_wait: Duration,
    /// Pauses waiting for the lane's claim in flight to return.
    pause_waiters: Vec<oneshot::Sender<()>>,
}

struct Running {
    lane: usize,
    attempt: i32,
    max_attempts: i32,
    kind: &'static str,
    deadline: Instant,
    abort: tokio::task::AbortHandle,
    lease_lost: bool,
    /// A rescued job: its worker died running it before (see `claimed`).
    rescued: bool,
}

struct ShutdownState {
    running_at_start: usize,
    waiters: Vec<oneshot::Sender<()>>,
}

/// Everything the supervisor is built from (assembled by the engine builder).
pub(crate) struct SupervisorParts {
    pub(crate) settings: Arc<Settings>,
    pub(crate) store: Store,
    pub(crate) app_pool: Pool,
    pub(crate) registry: Arc<Registry>,
    pub(crate) data: Arc<DataMap>,
    pub(crate) lanes: Vec<(Lane, Addr<Claimer>)>,
    pub(crate) completer: Addr<Completer>,
    pub(crate) handlers: Arc<HandlerRuntime>,
    pub(crate) listener_config: tokio_postgres::Config,
    pub(crate) schema_verified: bool,
}

impl JobSupervisor {
    pub(crate) fn new(p: SupervisorParts) -> Self {
        let kinds = Arc::new(p.registry.kinds());
        JobSupervisor {
            lane_config: p.lanes.iter().map(|(lane, _)| lane.clone()).collect(),
            lanes: p
                .lanes
                .into_iter()
                .map(|(lane, claimer)| LaneSlot {
                    name: Arc::from(lane.name.as_str()),
                    account: LaneAccount::new(lane.concurrency),
                    lane,
                    claimer,
                    started: 0,
                    total_wait: Duration::ZERO,
                    max_wait: Duration::ZERO,
                    pause_waiters: Vec::new(),
                })
                .collect(),
            settings: p.settings,
            store: p.store,
            app_pool: p.app_pool,
            registry: p.registry,
            kinds,
            data: p.data,
            running: HashMap::new(),
            completer: p.completer,
            handlers: p.handlers,
            listener: ListenerStats::default(),
            listener_addr: None,
            maintenance_addr: None,
            listener_config: p.listener_config,
            started_total: 0,
            shutdown: None,
            claim_log: LogLimiter::new(Duration::from_secs(5)),
            finished: None,
            deferred_starts: 0,
            schema_verified: p.schema_verified,
            schema_check_in_flight: false,
        }
    }

    fn lane_index(&self, name: &str) -> Option<usize> {
        self.lanes.iter().position(|l| &*l.name == name)
    }

    /// Marks every lane that can take `priority` (all lanes if unknown) as wanting work,
    /// and dispatches.
    fn wake(&mut self, ctx: &mut Context<Self>, priority: Option<i16>) {
        if !self.schema_verified {
            return;
        }
        for i in 0..self.lanes.len() {
            if priority.is_none_or(|p| self.lanes[i].lane.accepts(p)) {
                self.lanes[i].account.want();
                self.dispatch(ctx, i);
            }
        }
    }

    /// Resolves when lane `i`'s claim in flight, if any, has returned.
    fn claim_returned(&mut self, i: usize) -> Option<oneshot::Receiver<()>> {
        if !self.lanes[i].account.claim_in_flight() {
            return None;
        }
        let (tx, rx) = oneshot::channel();
        self.lanes[i].pause_waiters.push(tx);
        Some(rx)
    }

    /// Starts a claim for lane `i` if its accounting says so.
    fn dispatch(&mut self, ctx: &mut Context<Self>, i: usize) {
        let Some(limit) = self.lanes[i].account.begin_claim() else {
            return;
        };
        let busy: Vec<bool> = self.lanes.iter().map(|l| l.account.busy()).collect();
        let floor = crate::lane::borrow_floor(&self.lane_config, &busy, i);
        // One token per claim: (job id, token) identifies each run uniquely.
        let token = fastrand::i64(1..i64::MAX);
        self.lanes[i]
            .claimer
            .send(Claim {
                limit,
                floor,
                token,
            })
            .into_actor(self)
            .map(move |result, act, ctx| {
                let result = result.map_err(crate::Error::from).and_then(|r| r);
                act.claimed(ctx, i, limit, token, result);
            })
            .spawn(ctx);
    }

    fn claimed(
        &mut self,
        ctx: &mut Context<Self>,
        i: usize,
        asked: u32,
        token: i64,
        result: Result<Vec<ClaimedJob>>,
    ) {
        for w in self.lanes[i].pause_waiters.drain(..) {
            let _ = w.send(());
        }
        match result {
            Ok(jobs) => {
                self.lanes[i].account.end_claim(asked, jobs.len() as u32);
                if self.shutdown.is_some() || self.lanes[i].account.paused() {
                    // The claim was in flight when shutdown began or the lane was paused:
                    // hand its jobs straight back (attempt given back), so that nothing
                    // starts once `Shutdown` or `Pause` has been handled.
                    for job in jobs {
                        self.lanes[i].account.finish();
                        self.completer.do_send(Outcome(OutcomeRow {
                            id: job.id,
                            token,
                            action: Action::Release,
                        }));
                    }
                    self.check_quiet();
                    return;
                }
                // At most one rescued job runs here at a time, so a poison pill that
                // kills this process cannot take other rescued jobs down with it again
                // and again until they too are failed as poison pills. The claim skips
                // rescued jobs while one runs; this catches a claim that returned two,
                // or two lanes that claimed one each at once.
                let mut rescued_here = self.running.values().any(|r| r.rescued);
                let mut candidate = None;
                let mut extras = Vec::new();
                for job in jobs {
                    if job.rescues == 0 {
                        self.start_run(ctx, i, token, job);
                    } else if rescued_here {
                        extras.push(job);
                    } else {
                        rescued_here = true;
                        candidate = Some(job);
                    }
                }
                if extras.is_empty() {
                    if let Some(job) = candidate {
                        self.start_run(ctx, i, token, job);
                    }
                } else {
                    self.release_then_start(ctx, i, token, extras, candidate);
                }
                self.dispatch(ctx, i);
            }
            Err(e) => {
                self.lanes[i].account.fail_claim();
                if let Some(suppressed) = self.claim_log.allow() {
                    tracing::warn!(lane = %self.lanes[i].name, error = %e, suppressed,
                        "claim failed; retrying at the next poll");
                }
                self.check_quiet();
            }
        }
    }

    /// Hands `extras` (rescued jobs this process must not run alongside another one)
    /// back, and starts `candidate` only once the hand-back is written: if the candidate
    /// is a poison pill and kills the process first, jobs still held here would be
    /// rescued again and wrongly counted as crashing their worker.
    fn release_then_start(
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
                        act.lanes[i].account.finish();
                        act.completer.do_send(Outcome(OutcomeRow {
                            id: job.id,
                            token,
                            action: Action::Release,
                        }));
                    }
                    None => {}
                }
                act.check_quiet();
            })
            .spawn(ctx);
    }

    fn start_run(&mut self, ctx: &mut Context<Self>, i: usize, token: i64, job: ClaimedJob) {
        let finished = self.finished_queue(ctx);
        let key = (job.id, token);
        let Some(reg) = self.registry.get(&job.kind) else {
            // INVARIANT-ish: claims filter on registered kinds, so this is unreachable
            // unless the registry changed; hand the job back rather than lose it.
            self.lanes[i].account.finish();
            self.completer.do_send(Outcome(OutcomeRow {
                id: job.id,
                token,
                action: Action::Release,
            }));
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
    fn finished_queue(&mut self, ctx: &mut Context<Self>) -> Finished {
        self.finished
            .get_or_insert_with(|| Finished::new(ctx.address().recipient()))
            .clone()
    }

    /// A run ended: free its slot and decide its outcome. Returns the lane and the
    /// outcome to write, or `None` for the late outcome of a run already written off.
    fn settle_run(&mut self, key: RunKey, result: RunResult) -> Option<(usize, OutcomeRow)> {
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
    fn finish_run(&mut self, ctx: &mut Context<Self>, key: RunKey, result: RunResult) {
        if let Some((lane, outcome)) = self.settle_run(key, result) {
            self.completer.do_send(Outcome(outcome));
            self.after_finish(ctx, &[lane]);
        }
    }

    fn after_finish(&mut self, ctx: &mut Context<Self>, lanes: &[usize]) {
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
    fn expire_overdue(&mut self, ctx: &mut Context<Self>) {
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

    fn renew_leases(&mut self, ctx: &mut Context<Self>) {
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

    fn poll_interval(&self) -> Duration {
        match self.listener.mode {
            ListenerMode::Notify => self.settings.poll_interval,
            ListenerMode::PollOnly => self
                .settings
                .poll_interval_without_listener
                .min(self.settings.poll_interval),
        }
    }

    /// Polls every lane on a jittered interval: the backstop for lost notifications,
    /// scheduled jobs and retries coming due.
    fn poll(&mut self, ctx: &mut Context<Self>) {
        if self.shutdown.is_some() {
            return;
        }
        if !self.schema_verified {
            self.verify_schema(ctx);
        }
        self.wake(ctx, None);
        ctx.run_later(jittered(self.poll_interval(), 0.1), |act, ctx| {
            act.poll(ctx)
        });
    }

    /// Checks the schema version once the database is reachable (after starting while
    /// it was not).
    fn verify_schema(&mut self, ctx: &mut Context<Self>) {
        if self.schema_check_in_flight {
            return;
        }
        self.schema_check_in_flight = true;
        let store = self.store.clone();
        async move { store.schema_version().await }
            .into_actor(self)
            .map(|result, act, ctx| {
                act.schema_check_in_flight = false;
                match result {
                    Ok(crate::migrate::SCHEMA_VERSION) => {
                        tracing::info!("database reachable and schema verified; claiming");
                        act.schema_verified = true;
                        act.wake(ctx, None);
                    }
                    Ok(found) => {
                        if let Some(suppressed) = act.claim_log.allow() {
                            tracing::error!(
                                found,
                                expected = crate::migrate::SCHEMA_VERSION,
                                suppressed,
                                "schema is not migrated to this pglane's version; not claiming"
                            );
                        }
                    }
                    Err(_) => {} // The store's breaker reports outages.
                }
            })
            .spawn(ctx);
    }

    /// During shutdown, wakes the waiters once nothing runs and no claim is in flight.
    fn check_quiet(&mut self) {
        let quiet = self.running.is_empty()
            && self.deferred_starts == 0
            && self.lanes.iter().all(|l| !l.account.claim_in_flight());
        if let (true, Some(s)) = (quiet, self.shutdown.as_mut()) {
            for w in s.waiters.drain(..) {
                let _ = w.send(());
            }
        }
    }
}

impl Actor for JobSupervisor {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        let me = ctx.address();
        let listener = Listener::new(
            self.listener_config.clone(),
            self.store.clone(),
            self.store.channel().to_string(),
            self.settings.clone(),
            me.clone(),
        );
        self.listener_addr = Some(listener.start());
        self.maintenance_addr =
            Some(Maintenance::new(self.store.clone(), self.settings.clone(), me).start());
        ctx.run_interval(self.settings.renew_interval(), |act, ctx| {
            act.renew_leases(ctx)
        });
        let tick = (self.settings.job_timeout / 4)
            .clamp(Duration::from_millis(20), Duration::from_millis(250));
        ctx.run_interval(tick, |act, ctx| act.expire_overdue(ctx));
        self.poll(ctx);
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

impl Handler<JobsAvailable> for JobSupervisor {
    type Result = ();

    fn handle(&mut self, msg: JobsAvailable, ctx: &mut Context<Self>) {
        self.listener.last_notification = Some(SystemTime::now());
        self.wake(ctx, msg.priority);
    }
}

impl Handler<ListenerChanged> for JobSupervisor {
    type Result = ();

    fn handle(&mut self, msg: ListenerChanged, ctx: &mut Context<Self>) {
        if msg.up {
            self.listener.mode = ListenerMode::Notify;
            self.listener.connects += 1;
            // Catch up on anything enqueued while we were not listening.
            self.wake(ctx, None);
        } else {
            self.listener.mode = ListenerMode::PollOnly;
            self.listener.last_error = msg.error;
        }
    }
}

/// Stops the helper actors (listener, maintenance) during shutdown.
fn stop_helpers(sup: &mut JobSupervisor) {
    if let Some(l) = sup.listener_addr.take() {
        l.do_send(StopListener);
    }
    if let Some(m) = sup.maintenance_addr.take() {
        m.do_send(StopMaintenance);
    }
}

//! The JobSupervisor: keeps the lanes' slot accounting, dispatches claims, starts runs,
//! enforces timeouts, renews leases, and forwards outcomes to the completer.
//!
//! Claims are dispatched only when a lane has free slots *and* work may exist: a
//! notification, a poll tick, a full previous claim, or a (re)connected listener. At most
//! one claim per lane is in flight; hints that arrive meanwhile are served when it
//! returns, which also batches claims naturally under load.

mod control;
mod runs;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use actix::prelude::*;
use tokio::sync::oneshot;

use crate::actor::claimer::{Claim, Claimer};
use crate::actor::completer::Completer;
use crate::actor::executor::{Finished, HandlerRuntime, RunKey};
use crate::actor::listener::{JobsAvailable, Listener, ListenerChanged, StopListener};
use crate::actor::maintenance::{Maintenance, StopMaintenance};
use crate::actor::LogLimiter;
use crate::backoff::jittered;
use crate::config::Settings;
use crate::error::Result;
use crate::job::{DataMap, Registry};
use crate::lane::{Lane, LaneAccount};
use crate::stats::{ListenerMode, ListenerStats};
use crate::store::{ClaimedJob, Pool, Store};

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
    /// Which lanes are known to be backlogged (shared with engine handles).
    backlog: Arc<crate::lane::Backlog>,
    /// The lanes' configuration, index for index with `lanes`.
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
    pub(crate) backlog: Arc<crate::lane::Backlog>,
}

impl JobSupervisor {
    pub(crate) fn new(p: SupervisorParts) -> Self {
        let kinds = Arc::new(p.registry.kinds());
        JobSupervisor {
            backlog: p.backlog,
            lane_config: p.lanes.iter().map(|(lane, _)| lane.clone()).collect(),
            lanes: p
                .lanes
                .into_iter()
                .map(|(lane, claimer)| LaneSlot {
                    name: Arc::from(lane.name.as_str()),
                    account: LaneAccount::new(lane.concurrency),
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
            if priority.is_none_or(|p| self.lane_config[i].accepts(p)) {
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
        let floor =
            crate::lane::borrow_floor(&self.lane_config, |j| self.lanes[j].account.busy(), i);
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
                // Full and out of slots: it claims again as soon as one frees, so an
                // enqueue for this lane need not NOTIFY (see `Backlog`).
                let full = jobs.len() as u32 == asked && asked > 0;
                self.backlog.set(i, full && !self.lanes[i].account.paused());
                self.lanes[i].account.end_claim(asked, jobs.len() as u32);
                if self.shutdown.is_some() || self.lanes[i].account.paused() {
                    // The claim was in flight when shutdown began or the lane was paused:
                    // hand its jobs straight back (attempt given back), so that nothing
                    // starts once `Shutdown` or `Pause` has been handled.
                    for job in jobs {
                        self.hand_back(i, token, job.id);
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
                self.backlog.set(i, false);
                self.lanes[i].account.fail_claim();
                if let Some(suppressed) = self.claim_log.allow() {
                    tracing::warn!(lane = %self.lanes[i].name, error = %e, suppressed,
                        "claim failed; retrying at the next poll");
                }
                self.check_quiet();
            }
        }
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

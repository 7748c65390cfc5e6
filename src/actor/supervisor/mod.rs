//! The JobSupervisor: the actor applications talk to, and the shell around the dispatch
//! core. It turns messages into core calls (`events`, `requests`, `shutdown`) and carries
//! out what the core decides (`effects`); the rules themselves live in `crate::dispatch`.
//!
//! Its children report through `Recipient`s of the messages in `inbox`: the listener
//! (notifications), one claimer per lane (claims), the handler runtimes (runs that
//! ended), the completer (outcomes), leases (renewals) and maintenance (rescues, the
//! schema check).

mod effects;
mod events;
pub(crate) mod inbox;
mod requests;
mod shutdown;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use actix::prelude::*;
use tokio::sync::oneshot;
use tokio::task::AbortHandle;

use crate::actor::claimer::{ClaimBase, Claimer};
use crate::actor::completer::{Completer, StuckPolicy};
use crate::actor::executor::{CancelSignals, EndedRuns, HandlerPool, Target};
use crate::actor::heartbeat::{Heartbeat, HeartbeatReports};
use crate::actor::leases::Leases;
use crate::actor::listener::{Listener, ListenerReports};
use crate::actor::maintenance::{Maintenance, MaintenanceReports};
use crate::actor::scheduler::Scheduler;
use crate::backoff::jittered;
use crate::config::{Settings, STUCK_POLL};
use crate::dispatch::{CoreConfig, Dispatcher, Effects, RunKey, WaiterId};
use crate::job::{DataMap, Registry};
use crate::lane::{LaneSpec, NotifyGate};
use crate::ops::Ops;
use crate::outcome::RunResult;
use crate::stats::{ListenerMode, ListenerStats};
use crate::store::{ClaimedJob, Pool, Store};
use crate::telemetry::metrics::{EngineLabels, Gauges, OutcomeMetrics, RunMetrics};
use crate::telemetry::RunLog;

/// The actor applications talk to: send it [`Enqueue`](crate::Enqueue),
/// [`Pause`](crate::Pause), [`Resume`](crate::Resume),
/// [`SetConcurrency`](crate::SetConcurrency), [`Cancel`](crate::Cancel),
/// [`Retry`](crate::Retry), [`Stats`](crate::Stats) and [`Shutdown`](crate::Shutdown).
/// Get its address from [`Engine::supervisor`](crate::Engine::supervisor).
pub struct JobSupervisor {
    core: Dispatcher<ClaimedJob, AbortHandle>,
    /// What the last core call decided; emptied by `carry_out`.
    fx: Effects<AbortHandle>,
    settings: Arc<Settings>,
    store: Store,
    ops: Ops,
    runs: RunSetup,
    children: Children,
    listener: ListenerStats,
    /// Logs runs that ended (rate limited).
    run_log: RunLog,
    /// Runs started and ended, by lane and kind.
    run_metrics: RunMetrics,
    /// Lane and engine gauges, refreshed every `metrics_interval`.
    gauges: Gauges,
    /// Pauses and shutdowns waiting for the core's answer.
    waiters: HashMap<WaiterId, oneshot::Sender<()>>,
    /// Reused buffers for runs that ended and started.
    ended_buf: Vec<(RunKey, RunResult)>,
    started_buf: Vec<RunKey>,
}

/// What starting a run needs.
struct RunSetup {
    registry: Arc<Registry>,
    app_pool: Pool,
    data: Arc<DataMap>,
    /// Handed to every run, for jobs that enqueue jobs.
    ops: Arc<Ops>,
    queue: Arc<str>,
    handlers: Arc<HandlerPool>,
    /// The handler runtime new runs go to.
    target: Target,
    /// Where runs report their end.
    ended: EndedRuns,
    /// How runs' handlers learn of a cancel.
    signals: CancelSignals,
}

/// The supervisor's children, started with it.
#[derive(Default)]
struct Children {
    claimers: Vec<Addr<Claimer>>,
    completer: Option<Addr<Completer>>,
    leases: Option<Addr<Leases>>,
    listener: Option<Addr<Listener>>,
    maintenance: Option<Addr<Maintenance>>,
    scheduler: Option<Addr<Scheduler>>,
    heartbeat: Option<Addr<Heartbeat>>,
}

/// Everything the supervisor is built from (assembled by the engine builder).
pub(crate) struct SupervisorParts {
    pub(crate) settings: Arc<Settings>,
    pub(crate) store: Store,
    pub(crate) app_pool: Pool,
    pub(crate) registry: Arc<Registry>,
    pub(crate) data: Arc<DataMap>,
    /// Each lane's fixed config and initial slots.
    pub(crate) lanes: Vec<(Arc<LaneSpec>, u32)>,
    pub(crate) gate: Arc<NotifyGate>,
    pub(crate) claim_base: ClaimBase,
    pub(crate) handlers: Arc<HandlerPool>,
    pub(crate) listener_config: crate::connect::Connector,
    pub(crate) schema_verified: bool,
    /// The engine's periodic jobs (none: no scheduler is started).
    pub(crate) schedules: Vec<crate::schedule::ScheduleSpec>,
}

impl JobSupervisor {
    /// Starts the supervisor and its children; returns its address and the engine's
    /// operations (which wake it).
    pub(crate) fn launch(p: SupervisorParts) -> (Addr<JobSupervisor>, Ops) {
        let mut ops_out = None;
        let addr = JobSupervisor::create(|ctx| {
            let me: Recipient<inbox::WakeLanes> = ctx.address().recipient();
            let wake = Arc::new(move |priority| me.do_send(inbox::WakeLanes { priority }));
            let requester = crate::cancel::engine_requester(&p.claim_base.worker_id);
            let ops = Ops::new(p.store.clone(), p.gate.clone(), wake, requester.into());
            ops_out = Some(ops.clone());
            JobSupervisor::new(p, ops, ctx)
        });
        // INVARIANT: `create` runs its closure before returning.
        (addr, ops_out.expect("supervisor created"))
    }

    fn new(p: SupervisorParts, ops: Ops, ctx: &mut Context<Self>) -> Self {
        let s = &p.settings;
        let config = CoreConfig {
            retry_backoff: s.retry_backoff,
            renew_every: s.renew_interval(),
            start_within: s.renew_interval(),
            stuck_poll: STUCK_POLL,
            threads: p.handlers.threads(),
            max_stuck_threads: s.max_stuck_threads,
            cancel_grace: s.cancel_grace,
        };
        let specs: Vec<Arc<LaneSpec>> = p.lanes.iter().map(|(spec, _)| spec.clone()).collect();
        let core = Dispatcher::new(
            p.lanes,
            p.gate,
            Box::new(|| fastrand::i64(1..i64::MAX)),
            p.schema_verified,
            config,
        );
        let labels = EngineLabels::new(&s.queue, specs.iter().map(|l| l.name.clone()));
        let me = ctx.address();
        let children = Children {
            claimers: specs
                .iter()
                .enumerate()
                .map(|(i, spec)| {
                    let base = p.claim_base.clone();
                    let metrics = labels.claims(i as u16);
                    let reply = me.clone().recipient();
                    Claimer::new(p.store.clone(), i, spec, base, metrics, reply).start()
                })
                .collect(),
            completer: Some(
                Completer::new(
                    p.store.clone(),
                    s.reconnect_backoff,
                    StuckPolicy {
                        limit: s.max_rescues,
                        retry_backoff: s.retry_backoff,
                    },
                    OutcomeMetrics::new(labels.clone()),
                    !s.completed_retention.is_zero(),
                )
                .start(),
            ),
            leases: Some(
                Leases::new(
                    p.store.clone(),
                    s.lease.as_secs_f64() * 1000.0,
                    me.clone().recipient(),
                    me.clone().recipient(),
                )
                .start(),
            ),
            listener: Some(
                Listener::new(
                    p.listener_config,
                    p.store.clone(),
                    p.store.channel().to_string(),
                    p.settings.clone(),
                    ListenerReports {
                        available: me.clone().recipient(),
                        changed: me.clone().recipient(),
                        cancel: me.clone().recipient(),
                    },
                )
                .start(),
            ),
            maintenance: Some(
                Maintenance::new(
                    p.store.clone(),
                    p.settings.clone(),
                    MaintenanceReports {
                        wake: me.clone().recipient(),
                        schema_verified: (!p.schema_verified).then(|| me.clone().recipient()),
                    },
                    &specs,
                )
                .start(),
            ),
            scheduler: (!p.schedules.is_empty()).then(|| {
                Scheduler::new(p.store.clone(), p.schedules, &p.claim_base.worker_id).start()
            }),
            heartbeat: Some(
                Heartbeat::new(
                    p.store.clone(),
                    p.settings.queue.clone(),
                    p.claim_base.worker_id.clone(),
                    p.settings.heartbeat_interval,
                    HeartbeatReports {
                        lanes: me.clone().recipient(),
                        pause: me.clone().recipient(),
                        resume: me.clone().recipient(),
                        concurrency: me.clone().recipient(),
                    },
                )
                .start(),
            ),
        };
        JobSupervisor {
            core,
            fx: Effects::default(),
            runs: RunSetup {
                registry: p.registry,
                app_pool: p.app_pool,
                data: p.data,
                ops: Arc::new(ops.clone()),
                queue: Arc::from(p.settings.queue.as_str()),
                target: p.handlers.target(),
                handlers: p.handlers,
                ended: EndedRuns::new(me.recipient()),
                signals: CancelSignals::default(),
            },
            run_log: RunLog::new(&p.settings.queue),
            run_metrics: RunMetrics::new(labels.clone()),
            gauges: Gauges::new(&labels, specs.len()),
            settings: p.settings,
            store: p.store,
            ops,
            children,
            listener: ListenerStats::default(),
            waiters: HashMap::new(),
            ended_buf: Vec::new(),
            started_buf: Vec::new(),
        }
    }

    /// Sets the lane and engine gauges from fresh statistics of live jobs.
    fn refresh_gauges(&mut self, ctx: &mut Context<Self>) {
        ctx.address()
            .send(requests::GaugeStats)
            .into_actor(self)
            .map(|stats, act, _| {
                if let Ok(Ok(stats)) = stats {
                    act.gauges.set(&stats);
                }
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

    /// Wakes every lane on a jittered interval: the backstop for lost notifications,
    /// scheduled jobs and retries coming due.
    fn poll(&mut self, ctx: &mut Context<Self>) {
        if self.core.shutting_down() {
            return;
        }
        self.core.wake(None, &mut self.fx);
        self.carry_out(ctx);
        ctx.run_later(jittered(self.poll_interval(), 0.1), |act, ctx| {
            act.poll(ctx)
        });
    }

    /// A reply channel for a core waiter.
    fn waiter(&mut self, id: WaiterId) -> oneshot::Receiver<()> {
        let (tx, rx) = oneshot::channel();
        self.waiters.insert(id, tx);
        rx
    }
}

impl Actor for JobSupervisor {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        ctx.run_interval(self.settings.tick_interval(), |act, ctx| act.tick(ctx));
        ctx.run_interval(self.settings.metrics_interval, |act, ctx| {
            act.refresh_gauges(ctx)
        });
        self.poll(ctx);
    }
}

/// Stops the helpers that work on their own (listener, maintenance) during shutdown.
fn stop_helpers(sup: &mut JobSupervisor) {
    if let Some(l) = sup.children.listener.take() {
        l.do_send(crate::actor::listener::StopListener);
    }
    if let Some(m) = sup.children.maintenance.take() {
        m.do_send(crate::actor::maintenance::StopMaintenance);
    }
    if let Some(s) = sup.children.scheduler.take() {
        s.do_send(crate::actor::scheduler::StopScheduler);
    }
    if let Some(h) = sup.children.heartbeat.take() {
        h.do_send(crate::actor::heartbeat::StopHeartbeat);
    }
}

//! The scheduler: fires this engine's periodic jobs. Every engine that declares a
//! schedule runs one; none is a leader. A pass loads the stored schedules (definition,
//! last tick, the database clock), works out which ticks are due under each one's
//! missed-tick policy (`schedule::plan`), and fires them with the store's
//! compare-and-set, so engines racing for a tick enqueue it once. It then sleeps until
//! the next tick (at most a second, so a changed definition is seen soon).
//!
//! It declares its schedules first (retrying until the database takes them), and keeps
//! them active while it runs: a schedule no running engine declares stops firing and
//! shows as inactive.

use std::sync::Arc;
use std::time::{Duration, Instant};

use actix::prelude::*;
use chrono::TimeDelta;

use crate::actor::LogLimiter;
use crate::error::Result;
use crate::schedule::{plan, CronTicks, Missed, ScheduleSpec};
use crate::store::Store;

/// How often the engine marks its schedules active.
const HEARTBEAT_EVERY: Duration = Duration::from_secs(3);

/// How long a schedule stays active after an engine last marked it.
pub(crate) const ACTIVE_FOR: Duration = Duration::from_secs(15);

/// Longest sleep between passes, whatever the next tick.
const MAX_SLEEP: Duration = Duration::from_secs(1);

/// Pause after a failed pass (the store's breaker paces probes during an outage).
const RETRY_AFTER: Duration = Duration::from_millis(250);

/// Wakes this long after a tick is due, so the database clock has passed it.
const WAKE_MARGIN: Duration = Duration::from_millis(3);

pub(crate) struct Scheduler {
    store: Store,
    specs: Arc<Vec<ScheduleSpec>>,
    names: Arc<Vec<String>>,
    worker_id: Arc<str>,
    declared: bool,
    last_heartbeat: Option<Instant>,
    log: Arc<LogLimiter>,
}

impl Scheduler {
    pub(crate) fn new(store: Store, specs: Vec<ScheduleSpec>, worker_id: &str) -> Self {
        let names = specs.iter().map(|s| s.name.clone()).collect();
        Scheduler {
            store,
            specs: Arc::new(specs),
            names: Arc::new(names),
            worker_id: Arc::from(worker_id),
            declared: false,
            last_heartbeat: None,
            log: Arc::new(LogLimiter::new(Duration::from_secs(10))),
        }
    }

    fn pass(&mut self, ctx: &mut Context<Self>) {
        let store = self.store.clone();
        let specs = self.specs.clone();
        let names = self.names.clone();
        let worker_id = self.worker_id.clone();
        let declare = !self.declared;
        let heartbeat = !declare
            && self
                .last_heartbeat
                .is_none_or(|t| t.elapsed() >= HEARTBEAT_EVERY);
        async move {
            if declare {
                for spec in specs.iter() {
                    if store.declare_schedule(spec, &worker_id, ACTIVE_FOR).await? {
                        tracing::info!(schedule = %spec.name, "enqueued the schedule's run on start");
                    }
                }
            } else if heartbeat {
                store.schedules_heartbeat(&names, ACTIVE_FOR).await?;
            }
            fire_due(&store, &names).await
        }
        .into_actor(self)
        .map(move |result: Result<Duration>, act, ctx| {
            let sleep = match result {
                Ok(sleep) => {
                    if declare || heartbeat {
                        act.declared = true;
                        act.last_heartbeat = Some(Instant::now());
                    }
                    sleep
                }
                Err(e) => {
                    if let Some(suppressed) = act.log.allow() {
                        tracing::warn!(error = %e, suppressed, "schedule pass failed; retrying");
                    }
                    RETRY_AFTER
                }
            };
            ctx.run_later(sleep, |act, ctx| act.pass(ctx));
        })
        .wait(ctx);
    }
}

/// Fires the due ticks of every schedule in `names`; returns how long to sleep until
/// the next one.
async fn fire_due(store: &Store, names: &[String]) -> Result<Duration> {
    let mut sleep = MAX_SLEEP;
    for s in store.load_schedules(names).await? {
        let Some(missed) = Missed::from_stored(&s.missed, s.catch_up_max) else {
            tracing::warn!(schedule = %s.name, "stored missed-tick policy unknown to this pglane; not firing");
            continue;
        };
        let ticks = match CronTicks::parse(&s.name, &s.cron, &s.time_zone) {
            Ok(t) => t,
            Err(e) => {
                tracing::warn!(error = %e, "stored schedule does not parse here; not firing");
                continue;
            }
        };
        let p = plan(&ticks, s.last_tick, s.now, missed, s.grace);
        if let Some(to) = p.advance_to {
            let (won, inserted) = store.fire_schedule(&s, &p.fire, to, p.skipped).await?;
            if won && p.skipped > 0 {
                tracing::warn!(
                    schedule = %s.name,
                    skipped = p.skipped,
                    enqueued = inserted,
                    policy = %missed,
                    "schedule missed ticks while no engine could enqueue them"
                );
            }
        }
        if let Some(next) = p.next {
            let until = (next - s.now).max(TimeDelta::zero());
            let until = until.to_std().unwrap_or(MAX_SLEEP) + WAKE_MARGIN;
            sleep = sleep.min(until);
        }
    }
    Ok(sleep)
}

impl Actor for Scheduler {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        self.pass(ctx);
    }
}

/// Stop the scheduler.
#[derive(Message)]
#[rtype(result = "()")]
pub(crate) struct StopScheduler;

impl Handler<StopScheduler> for Scheduler {
    type Result = ();

    fn handle(&mut self, _: StopScheduler, ctx: &mut Context<Self>) {
        ctx.stop();
    }
}

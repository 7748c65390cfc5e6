//! Maintenance: rescues jobs whose lease expired and prunes finished jobs past their
//! retention. Every engine runs a pass on a jittered interval, but only the one that
//! wins the schema's advisory lock does the work, so one process per cluster rescues at
//! a time.

use std::sync::Arc;
use std::time::Duration;

use actix::prelude::*;

use crate::actor::listener::JobsAvailable;
use crate::actor::supervisor::JobSupervisor;
use crate::actor::LogLimiter;
use crate::backoff::jittered;
use crate::config::Settings;
use crate::store::Store;

/// Dead row versions in the job table that trigger a VACUUM.
const VACUUM_AFTER_DEAD_ROWS: i64 = 20_000;

/// How often the dead-row count is checked (one cheap statistics query).
const VACUUM_CHECK_INTERVAL: Duration = Duration::from_secs(2);

pub(crate) struct Maintenance {
    store: Store,
    settings: Arc<Settings>,
    supervisor: Addr<JobSupervisor>,
    busy: bool,
    vacuuming: bool,
    log: LogLimiter,
}

impl Maintenance {
    pub(crate) fn new(
        store: Store,
        settings: Arc<Settings>,
        supervisor: Addr<JobSupervisor>,
    ) -> Self {
        Maintenance {
            store,
            settings,
            supervisor,
            busy: false,
            vacuuming: false,
            log: LogLimiter::new(Duration::from_secs(10)),
        }
    }

    /// Vacuums the job table when enough dead rows have piled up (see
    /// `Store::vacuum_if_needed`), checked more often than the rest of maintenance
    /// because under load the table turns over in seconds.
    fn vacuum(&mut self, ctx: &mut Context<Self>) {
        if !self.vacuuming {
            self.vacuuming = true;
            let store = self.store.clone();
            async move { store.vacuum_if_needed(VACUUM_AFTER_DEAD_ROWS).await }
                .into_actor(self)
                .map(|result, act, _| {
                    act.vacuuming = false;
                    if let Err(e) = result {
                        if let Some(suppressed) = act.log.allow() {
                            tracing::warn!(error = %e, suppressed, "vacuuming the job table failed");
                        }
                    }
                })
                .spawn(ctx);
        }
        let next = jittered(
            VACUUM_CHECK_INTERVAL.min(self.settings.maintenance_interval),
            0.2,
        );
        ctx.run_later(next, |act, ctx| act.vacuum(ctx));
    }

    fn pass(&mut self, ctx: &mut Context<Self>) {
        if !self.busy {
            self.busy = true;
            let store = self.store.clone();
            let s = self.settings.clone();
            // Right after an outage long enough to let leases run out, they expired only
            // because no worker could reach the database to renew them (or to write the
            // outcome of a run that ended meanwhile). Give the workers one lease to renew
            // and report before rescuing: otherwise every run spanning the outage is run
            // twice and counted as a crash towards `max_rescues`. Shorter blips (a timed
            // out call) cost no lease and do not hold rescues back.
            let rescue = !store.is_down()
                && store
                    .last_outage()
                    .is_none_or(|(since, lasted)| since >= s.lease || lasted < s.renew_interval());
            async move {
                store
                    .maintain(
                        rescue,
                        s.max_rescues,
                        s.completed_retention,
                        s.failed_retention,
                    )
                    .await
            }
            .into_actor(self)
            .map(|result, act, _| {
                act.busy = false;
                match result {
                    Ok(r) => {
                        if r.rescued > 0 || r.poisoned > 0 {
                            tracing::warn!(
                                rescued = r.rescued,
                                failed = r.poisoned,
                                "rescued jobs whose lease expired (their worker stopped)"
                            );
                            act.supervisor.do_send(JobsAvailable { priority: None });
                        }
                        if r.pruned > 0 {
                            tracing::debug!(
                                pruned = r.pruned,
                                "pruned finished jobs past retention"
                            );
                        }
                    }
                    Err(e) => {
                        if let Some(suppressed) = act.log.allow() {
                            tracing::warn!(error = %e, suppressed, "maintenance pass failed");
                        }
                    }
                }
            })
            .spawn(ctx);
        }
        let next = jittered(self.settings.maintenance_interval, 0.2);
        ctx.run_later(next, |act, ctx| act.pass(ctx));
    }
}

impl Actor for Maintenance {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        self.pass(ctx);
        self.vacuum(ctx);
    }
}

/// Stop the maintenance actor.
#[derive(Message)]
#[rtype(result = "()")]
pub(crate) struct StopMaintenance;

impl Handler<StopMaintenance> for Maintenance {
    type Result = ();

    fn handle(&mut self, _: StopMaintenance, ctx: &mut Context<Self>) {
        ctx.stop();
    }
}

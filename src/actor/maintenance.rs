//! Maintenance: rescues jobs whose lease expired and prunes finished jobs past their
//! retention. Every engine runs a pass on a jittered interval, but only the one that
//! wins the schema's advisory lock does the work, so one process per cluster rescues at
//! a time. It also vacuums the job table when dead rows pile up, and, for an engine
//! that started while the database was unavailable, checks the schema version until it
//! can (no claims before that). And it ages the jobs of lanes with `age_after`, every
//! poll interval (see `Lane::age_after`).

use std::sync::Arc;
use std::time::Duration;

use actix::prelude::*;

use crate::actor::supervisor::inbox::{SchemaVerified, WakeLanes};
use crate::actor::LogLimiter;
use crate::backoff::jittered;
use crate::config::Settings;
use crate::lane::LaneSpec;
use crate::store::Store;

/// Dead row versions in the job table that trigger a VACUUM.
const VACUUM_AFTER_DEAD_ROWS: i64 = 20_000;

/// How often the dead-row count is checked (one cheap statistics query).
const VACUUM_CHECK_INTERVAL: Duration = Duration::from_secs(2);

/// Where maintenance reports: rescued jobs to wake lanes for, and, if the schema is not
/// verified yet, where to say it is.
pub(crate) struct MaintenanceReports {
    pub(crate) wake: Recipient<WakeLanes>,
    pub(crate) schema_verified: Option<Recipient<SchemaVerified>>,
}

pub(crate) struct Maintenance {
    store: Store,
    settings: Arc<Settings>,
    reports: MaintenanceReports,
    busy: bool,
    vacuuming: bool,
    checking_schema: bool,
    /// Lanes with aging on.
    aging: Arc<Vec<Arc<LaneSpec>>>,
    aging_now: bool,
    log: LogLimiter,
}

impl Maintenance {
    pub(crate) fn new(
        store: Store,
        settings: Arc<Settings>,
        reports: MaintenanceReports,
        lanes: &[Arc<LaneSpec>],
    ) -> Self {
        let aging = lanes
            .iter()
            .filter(|l| l.age_after.is_some())
            .cloned()
            .collect();
        Maintenance {
            aging: Arc::new(aging),
            aging_now: false,
            store,
            settings,
            reports,
            busy: false,
            vacuuming: false,
            checking_schema: false,
            log: LogLimiter::new(Duration::from_secs(10)),
        }
    }

    /// Checks the schema version once the database is reachable, every fast poll
    /// interval until it is verified (an engine started without a database claims
    /// nothing before).
    fn check_schema(&mut self, ctx: &mut Context<Self>) {
        if self.reports.schema_verified.is_none() {
            return;
        }
        if !self.checking_schema {
            self.checking_schema = true;
            let store = self.store.clone();
            async move {
                store
                    .applied_migrations()
                    .await
                    .map(|a| crate::migrate::fit_of(&a))
            }
            .into_actor(self)
            .map(|result, act, _| {
                act.checking_schema = false;
                match result {
                    Ok(crate::schema_fit::SchemaFit::Fits) => {
                        tracing::info!("database reachable and schema verified; claiming");
                        if let Some(to) = act.reports.schema_verified.take() {
                            to.do_send(SchemaVerified);
                        }
                    }
                    Ok(misfit) => {
                        if let Some(suppressed) = act.log.allow() {
                            let schema = act.store.schema().to_string();
                            let why = misfit
                                .into_result(&schema, crate::migrate::SCHEMA_VERSION)
                                .err()
                                .map(|e| e.to_string())
                                .unwrap_or_default();
                            tracing::error!(
                                error = %why,
                                suppressed,
                                "the schema does not fit this pglane; not claiming"
                            );
                        }
                    }
                    Err(_) => {} // The store's breaker reports outages.
                }
            })
            .spawn(ctx);
        }
        let next = self
            .settings
            .poll_interval_without_listener
            .min(self.settings.poll_interval);
        ctx.run_later(jittered(next, 0.1), |act, ctx| act.check_schema(ctx));
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

    /// Ages the waiting jobs of lanes with `age_after`, every poll interval, in every
    /// engine (no leadership needed: the statement skips rows another engine holds, and
    /// raising a job twice changes nothing). Wakes the lanes when it raised any.
    fn age(&mut self, ctx: &mut Context<Self>) {
        if self.aging.is_empty() {
            return;
        }
        if !self.aging_now && !self.store.is_down() {
            self.aging_now = true;
            let store = self.store.clone();
            let lanes = self.aging.clone();
            let queue = self.settings.queue.clone();
            async move {
                let mut raised = Vec::new();
                for l in lanes.iter() {
                    let Some(after) = l.age_after else { continue };
                    if l.lo < l.hi && store.age_jobs(l.lo, l.hi, &queue, after).await? > 0 {
                        raised.push(l.lo);
                    }
                }
                Ok::<_, crate::error::Error>(raised)
            }
            .into_actor(self)
            .map(|result, act, _| {
                act.aging_now = false;
                match result {
                    Ok(raised) => {
                        for lo in raised {
                            act.reports.wake.do_send(WakeLanes { priority: Some(lo) });
                        }
                    }
                    Err(e) => {
                        if let Some(suppressed) = act.log.allow() {
                            tracing::warn!(error = %e, suppressed, "aging waiting jobs failed");
                        }
                    }
                }
            })
            .spawn(ctx);
        }
        ctx.run_later(jittered(self.settings.poll_interval, 0.1), |act, ctx| {
            act.age(ctx)
        });
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
                        crate::telemetry::metrics::rescued(
                            &act.settings.schema,
                            r.rescued.max(0) as u64,
                            r.poisoned.max(0) as u64,
                        );
                        if r.rescued > 0 {
                            tracing::warn!(
                                rescued = r.rescued,
                                "rescued jobs whose lease expired (their worker stopped); \
                                 they run again"
                            );
                        }
                        for (job, kind) in &r.poison_pills {
                            tracing::error!(
                                job,
                                kind = %kind,
                                max_rescues = act.settings.max_rescues,
                                "job failed for good as a poison pill: its lease expired \
                                 max_rescues times (its worker keeps dying while running it)"
                            );
                        }
                        if r.rescued > 0 || r.poisoned > 0 {
                            act.reports.wake.do_send(WakeLanes { priority: None });
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
        self.check_schema(ctx);
        self.pass(ctx);
        self.vacuum(ctx);
        self.age(ctx);
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

//! The engine builder: every setting with its default, validation, and start-up.

use std::sync::atomic::AtomicU64;
use std::sync::Arc;
use std::time::Duration;

use crate::actor::claimer::ClaimBase;
use crate::actor::executor::HandlerPool;
use crate::actor::supervisor::{JobSupervisor, SupervisorParts};
use crate::backoff::Backoff;
use crate::config::{IntoPgConfig, Settings};
use crate::connect::Connector;
use crate::engine::Engine;
use crate::error::{Error, Result};
use crate::job::{DataMap, Job, Registration, Registry};
use crate::lane::{validate_lanes, Lane, NotifyGate};
use crate::migrate::{channel_for, SCHEMA_VERSION};
use crate::schedule::{validate_all, Schedule};
use crate::store::{Manager, Store, HANDLER_CONNECTION_WAIT};

impl Engine {
    /// Starts configuring an engine for the given database (a URL or key-value string,
    /// with TLS parameters, see [`ConnectOptions`](crate::ConnectOptions); or a
    /// [`tokio_postgres::Config`]).
    pub fn builder(database: impl IntoPgConfig) -> EngineBuilder {
        EngineBuilder::new(database.into_pg_config())
    }
}

/// Configures and starts an [`Engine`]. Every setter names its default.
pub struct EngineBuilder {
    database: Result<crate::ConnectOptions>,
    settings: Settings,
    lanes: Vec<Lane>,
    registry: Registry,
    data: DataMap,
    schedules: Vec<Schedule>,
}

impl EngineBuilder {
    pub(crate) fn new(database: Result<crate::ConnectOptions>) -> Self {
        EngineBuilder {
            database,
            settings: Settings::default(),
            lanes: Vec::new(),
            registry: Registry::default(),
            data: DataMap::default(),
            schedules: Vec::new(),
        }
    }

    /// Adds a lane. Defaults to one lane, `default`, taking every priority with 10 slots.
    pub fn lane(mut self, lane: Lane) -> Self {
        self.lanes.push(lane);
        self
    }

    /// Registers a job type this engine runs. Only registered kinds are claimed.
    pub fn register<J: Job>(mut self) -> Self {
        self.registry.add(Registration::of::<J>());
        self
    }

    /// Adds a periodic job (see [`Schedule`]). Defaults to none. Every engine declaring
    /// a schedule fires it, and each tick is enqueued once across all of them; when
    /// engines declare different definitions of one schedule, the stored definition is
    /// the one written by the engine that started last, and all fire that one. A bad
    /// cron expression or time zone fails [`start`](Self::start) with
    /// [`Error::InvalidCron`] or [`Error::UnknownTimeZone`], a job the enqueue API would
    /// reject with [`Error::InvalidJob`], before anything is written.
    pub fn schedule(mut self, schedule: Schedule) -> Self {
        self.schedules.push(schedule);
        self
    }

    /// A shared value handlers read with [`JobContext::data`](crate::JobContext::data)
    /// (one per type). Defaults to none.
    pub fn data<T: std::any::Any + Send + Sync>(mut self, value: T) -> Self {
        self.data.insert(value);
        self
    }

    /// The schema holding the tables. Defaults to `pglane`.
    pub fn schema(mut self, schema: impl Into<String>) -> Self {
        self.settings.schema = schema.into();
        self
    }

    /// The queue this engine claims from. Defaults to `default`.
    pub fn queue(mut self, queue: impl Into<String>) -> Self {
        self.settings.queue = queue.into();
        self
    }

    /// Connections in the pool handed to handlers. Defaults to 10. The engine keeps a
    /// separate small pool for its own statements, so handlers cannot starve claims.
    pub fn pool_size(mut self, n: u32) -> Self {
        self.settings.pool_size = n;
        self
    }

    /// How long a claim holds a job before another worker may rescue it. Leases of
    /// running jobs are renewed every third of this. Defaults to 30 s.
    pub fn lease(mut self, d: Duration) -> Self {
        self.settings.lease = d;
        self
    }

    /// How long a run may take when neither the job nor its kind says. Defaults to 5 min.
    pub fn job_timeout(mut self, d: Duration) -> Self {
        self.settings.job_timeout = d;
        self
    }

    /// How long a run a user cancelled may go on after its handler was told
    /// ([`JobContext::cancelled`](crate::JobContext::cancelled)) before it is aborted.
    /// Defaults to 5 s.
    pub fn cancel_grace(mut self, d: Duration) -> Self {
        self.settings.cancel_grace = d;
        self
    }

    /// How often each lane polls while NOTIFY works (jittered ±10%). Defaults to 1 s.
    pub fn poll_interval(mut self, d: Duration) -> Self {
        self.settings.poll_interval = d;
        self
    }

    /// How often each lane polls while the listener is down. Defaults to 250 ms.
    pub fn poll_interval_without_listener(mut self, d: Duration) -> Self {
        self.settings.poll_interval_without_listener = d;
        self
    }

    /// Timeout of every database call. Defaults to 10 s; must be shorter than the lease.
    pub fn call_timeout(mut self, d: Duration) -> Self {
        self.settings.call_timeout = d;
        self
    }

    /// Timeout for opening a connection. Defaults to 5 s.
    pub fn connect_timeout(mut self, d: Duration) -> Self {
        self.settings.connect_timeout = d;
        self
    }

    /// How long shutdown waits for running jobs. Defaults to 30 s.
    pub fn shutdown_grace(mut self, d: Duration) -> Self {
        self.settings.shutdown_grace = d;
        self
    }

    /// Retry backoff after failed attempts. Defaults to [`Backoff::RETRY`]
    /// (1 s doubling to 1 h, ±25%).
    pub fn retry_backoff(mut self, b: Backoff) -> Self {
        self.settings.retry_backoff = b;
        self
    }

    /// Backoff between reconnect attempts and database probes while the database is
    /// unavailable (one probe per interval for the whole engine). Defaults to 100 ms
    /// doubling to 2 s, ±30%: with the default, an engine is back within about 2 s of the
    /// database accepting writes again, at the cost of one connection attempt per 2 s
    /// per engine during an outage.
    pub fn reconnect_backoff(mut self, b: Backoff) -> Self {
        self.settings.reconnect_backoff = b;
        self
    }

    /// How often maintenance (rescue, prune) runs. Defaults to 5 s.
    pub fn maintenance_interval(mut self, d: Duration) -> Self {
        self.settings.maintenance_interval = d;
        self
    }

    /// Rescues after which a job is failed as a poison pill. Defaults to 5. A job whose
    /// runs block their handler thread past the timeout this many times is failed the
    /// same way (see [`max_stuck_threads`](Self::max_stuck_threads)).
    pub fn max_rescues(mut self, n: i32) -> Self {
        self.settings.max_rescues = n;
        self
    }

    /// How long completed jobs stay in `jobs_finished`. Defaults to 24 h.
    /// `Duration::ZERO` keeps no history of completed jobs: they are deleted by the
    /// statement that completes them, without the copy to `jobs_finished` and the
    /// later prune (failed and cancelled jobs are still kept for `failed_retention`).
    pub fn completed_retention(mut self, d: Duration) -> Self {
        self.settings.completed_retention = d;
        self
    }

    /// How long failed and cancelled jobs stay in `jobs_finished`. Defaults to 7 days.
    pub fn failed_retention(mut self, d: Duration) -> Self {
        self.settings.failed_retention = d;
        self
    }

    /// How often the engine records its heartbeat (its lanes, for the dashboard) and
    /// applies lane controls set in the database (pause, resume, concurrency from the
    /// dashboard). An engine silent for three intervals is shown as gone. Defaults to 2 s.
    pub fn heartbeat_interval(mut self, d: Duration) -> Self {
        self.settings.heartbeat_interval = d;
        self
    }

    /// How often the listener's connection is health-checked. Defaults to 5 s.
    pub fn listener_health_interval(mut self, d: Duration) -> Self {
        self.settings.listener_health_interval = d;
        self
    }

    /// How often the lane and engine gauges (`pglane_lane_*`, `pglane_listener_connected`,
    /// `pglane_database_available`) are refreshed, from the figures of
    /// [`Engine::stats`](crate::Engine::stats) (one query, of live jobs only: the history
    /// is not counted). Defaults to 5 s.
    pub fn metrics_interval(mut self, d: Duration) -> Self {
        self.settings.metrics_interval = d;
        self
    }

    /// Threads running handlers. Defaults to the number of CPUs (at least 2).
    pub fn handler_threads(mut self, n: usize) -> Self {
        self.settings.handler_threads = n;
        self
    }

    /// How many handler threads stuck in a blocking handler are replaced at once.
    /// Defaults to 8.
    ///
    /// A handler that blocks its thread (`std::thread::sleep`, a blocking client, a
    /// tight loop) past its timeout cannot be aborted. The engine logs it at `error`,
    /// records the attempt as failed with cause `stuck` (failing the job for good on its
    /// `max_rescues`-th stuck run), keeps the run's slot until the call returns, and
    /// starts fresh threads for new runs, so the pool keeps its size. Each stuck thread
    /// lives on until its call returns. Past this many stuck at once, threads are no
    /// longer replaced: capacity is reduced (logged, and shown in
    /// [`EngineStats::handlers`](crate::EngineStats::handlers)), and with no usable
    /// thread left the engine claims nothing until one comes free.
    pub fn max_stuck_threads(mut self, n: usize) -> Self {
        self.settings.max_stuck_threads = n;
        self
    }

    /// This process's name in `worker_id` and `application_name`. Defaults to
    /// `pglane:<host>:<pid>`.
    pub fn worker_id(mut self, id: impl Into<String>) -> Self {
        self.settings.worker_id = Some(id.into());
        self
    }

    /// Whether an enqueue through this engine skips its NOTIFY when the lane that owns the
    /// job's priority here is known to be working through a backlog (its last claim came
    /// back full and it has no free slot): it will claim again the moment a slot frees,
    /// and NOTIFY takes a cluster-wide lock at commit. Other processes' idle lanes then
    /// find such jobs at their next poll. Defaults to `true`; transactional enqueue and
    /// the SQL function always notify.
    pub fn skip_notify_when_backlogged(mut self, yes: bool) -> Self {
        self.settings.skip_notify_when_backlogged = yes;
        self
    }

    /// Accept lanes that leave some priorities uncovered. Defaults to off: a gap is
    /// usually a typo, and jobs in it would run only when a less urgent lane borrows them.
    pub fn allow_priority_gaps(mut self) -> Self {
        self.settings.allow_priority_gaps = true;
        self
    }

    /// Validates the configuration, checks the schema is migrated, and starts the actors
    /// in the current actix system. Never migrates by itself.
    pub async fn start(self) -> Result<Engine> {
        let mut db = self.database?;
        let settings = self.settings;
        let channel = channel_for(&settings.schema)?;
        settings.validate()?;
        let lanes = if self.lanes.is_empty() {
            vec![Lane::new("default")]
        } else {
            self.lanes
        };
        validate_lanes(&lanes, settings.allow_priority_gaps)?;
        if self.registry.is_empty() {
            return Err(Error::InvalidConfig(
                "no job types registered: call `register::<YourJob>()`".into(),
            ));
        }
        for r in self.registry.iter() {
            crate::validate::kind(r.kind)?;
        }
        let schedules = validate_all(&self.schedules)?;
        let worker_id = settings.worker_id.clone().unwrap_or_else(default_worker_id);
        let pg = db.pg_config_mut();
        pg.connect_timeout(settings.connect_timeout);
        pg.keepalives(true);
        pg.keepalives_idle(Duration::from_secs(30));
        // Never work against a read-only server (a demoted primary, a standby): with a
        // multi-host string this also picks the writable host on every reconnect.
        pg.target_session_attrs(tokio_postgres::config::TargetSessionAttrs::ReadWrite);
        // Connections are tagged by role so operators (and fault tests) can tell them
        // apart in pg_stat_activity.
        let base_name = pg
            .get_application_name()
            .map(str::to_string)
            .unwrap_or_else(|| "pglane".into());
        let tagged = |role: &str| {
            let mut c = db.clone();
            let name = format!("{base_name} {role} {worker_id}");
            c.pg_config_mut()
                .application_name(name.chars().take(63).collect::<String>());
            c
        };
        let mut engine_pg = tagged("engine");
        // The server enforces the call timeout too, so an abandoned statement does not
        // keep running after the client gave up on it.
        let ms = settings.call_timeout.as_millis();
        let options = format!(
            "{} -c statement_timeout={ms} -c idle_in_transaction_session_timeout={}",
            engine_pg.pg_config().get_options().unwrap_or(""),
            ms * 2
        );
        engine_pg.pg_config_mut().options(options.trim());
        // Certificate files are read here: a missing one fails the start, naming it.
        let engine_pg = Connector::new(&engine_pg)?;
        let app_pg = Connector::new(&tagged("app"))?;
        let listener_pg = Connector::new(&tagged("listener"))?;

        let generation = Arc::new(AtomicU64::new(0));
        let engine_manager = Manager::new(engine_pg, generation.clone());
        // The engine pool makes one connection attempt per call: while the database is
        // unavailable the store's breaker paces the retries (one probe per interval), so
        // bb8's own retry loop would only multiply connection attempts on the server.
        let engine_pool = pool_builder(lanes.len() as u32 + 3, &settings)
            .retry_connection(false)
            .build_unchecked(engine_manager.clone());
        // Handlers' pool keeps bb8's retries: a handler waiting for a connection gets
        // one as soon as the database is back.
        let app_manager = Manager::new(app_pg, generation);
        let app_pool = pool_builder(settings.pool_size, &settings)
            .connection_timeout(HANDLER_CONNECTION_WAIT.max(settings.connect_timeout))
            .build_unchecked(app_manager.clone());
        let store = Store::new(
            engine_pool,
            &engine_manager,
            Some((app_pool.clone(), &app_manager)),
            &settings.schema,
            &channel,
            settings.call_timeout,
            settings.reconnect_backoff,
        );

        // A database that is down or read-only at start does not stop the engine: it
        // starts, polls, and verifies the schema once the database is back, like after
        // any outage. A database that answers with the wrong schema version is a
        // deployment error and fails now.
        let fit = store
            .applied_migrations()
            .await
            .map(|applied| crate::migrate::fit_of(&applied));
        let schema_verified = match fit {
            Ok(fit) => {
                fit.into_result(&settings.schema, SCHEMA_VERSION)?;
                true
            }
            Err(e) if e.is_topology_change() || e.is_resource_exhaustion() => {
                tracing::warn!(error = %e, "database unavailable at start; the engine will verify the schema when it is back");
                false
            }
            Err(e) => return Err(e),
        };

        let handlers = HandlerPool::new(settings.handler_threads)
            .map_err(|e| Error::InvalidConfig(format!("could not start handler threads: {e}")))?;
        let settings = Arc::new(settings);
        // Each lane's fixed config, held once and shared; its slots live in the core.
        let lanes: Vec<_> = lanes.into_iter().map(Lane::split).collect();
        let specs: Vec<_> = lanes.iter().map(|(spec, _)| spec.clone()).collect();
        let gate = Arc::new(NotifyGate::new(
            &specs,
            &settings.queue,
            settings.skip_notify_when_backlogged,
        ));
        let self_kinds = self.registry.kinds();
        let claim_base_kinds = self_kinds.len();
        let claim_base = ClaimBase {
            queue: settings.queue.clone(),
            kinds: self.registry.kinds(),
            lease_ms: settings.lease.as_secs_f64() * 1000.0,
            worker_id,
        };
        let (supervisor, ops) = JobSupervisor::launch(SupervisorParts {
            settings: settings.clone(),
            store,
            app_pool: app_pool.clone(),
            registry: Arc::new(self.registry),
            data: Arc::new(self.data),
            lanes,
            gate,
            claim_base,
            handlers: handlers.clone(),
            listener_config: listener_pg,
            schema_verified,
            schedules,
        });
        tracing::info!(
            schema = %settings.schema,
            queue = %settings.queue,
            lanes = ?specs.iter().map(|l| &*l.name).collect::<Vec<_>>(),
            registered_kinds = claim_base_kinds,
            database = if schema_verified { "available" } else { "unavailable" },
            "pglane engine started"
        );
        Ok(Engine {
            queue: Arc::from(settings.queue.as_str()),
            kinds: Arc::from(self_kinds),
            supervisor,
            ops,
            app_pool,
            _handlers: handlers,
        })
    }
}

/// Both pools: at most `size` connections, idle ones closed after 30 s, the most
/// recently used handed out first (see `store::pool::builder`).
fn pool_builder(size: u32, s: &Settings) -> bb8::Builder<Manager> {
    crate::store::pool_builder(size, s.connect_timeout)
}

fn default_worker_id() -> String {
    let host = std::env::var("HOSTNAME")
        .ok()
        .or_else(|| {
            std::fs::read_to_string("/etc/hostname")
                .ok()
                .map(|s| s.trim().to_string())
        })
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "localhost".into());
    format!("{host}:{}", std::process::id())
}

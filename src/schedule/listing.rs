//! Schedules as stats and the `pglane schedules` command show them.

use std::time::SystemTime;

use super::CronTicks;
use crate::store::schedules::ListedSchedule;

/// One stored schedule: its definition, whether any engine is running it, and its
/// last and next runs. From [`EngineStats::schedules`](crate::EngineStats::schedules) or
/// [`admin::schedules`](crate::admin::schedules).
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct ScheduleStats {
    /// The schedule's name.
    pub name: String,
    /// Its cron expression.
    pub cron: String,
    /// The IANA time zone the expression is read in.
    pub time_zone: String,
    /// The kind of job it enqueues.
    pub kind: String,
    /// The queue its jobs go to.
    pub queue: String,
    /// The priority its jobs are enqueued with.
    pub priority: i16,
    /// Its missed-tick policy: `skip`, `coalesce` or `catch_up(max)`.
    pub missed: String,
    /// Whether a running engine declares it (one that stopped, or whose code no longer
    /// declares it, stops marking it active; it then fires no more).
    pub active: bool,
    /// When its stored definition was written, and by which engine (the newest
    /// declaration's definition is the one fired).
    pub declared_at: SystemTime,
    /// The `worker_id` of the engine that wrote the stored definition.
    pub declared_by: Option<String>,
    /// The newest tick dealt with (enqueued or skipped).
    pub last_tick: SystemTime,
    /// When its last job was enqueued.
    pub last_run_at: Option<SystemTime>,
    /// Its next tick (if active, when its next job will be enqueued); `None` if the
    /// expression has no further tick or does not parse in this build.
    pub next_run: Option<SystemTime>,
    /// Jobs enqueued by ticks so far (not counting runs on start).
    pub runs: i64,
    /// Ticks skipped by the missed-tick policy so far.
    pub skipped: i64,
}

impl From<ListedSchedule> for ScheduleStats {
    fn from(s: ListedSchedule) -> Self {
        let next_run = CronTicks::parse(&s.name, &s.cron, &s.time_zone)
            .ok()
            .and_then(|t| t.next_after(s.now.max(s.last_tick)))
            .map(SystemTime::from);
        let missed = if s.missed == "catch_up" {
            format!("catch_up({})", s.catch_up_max)
        } else {
            s.missed
        };
        ScheduleStats {
            name: s.name,
            cron: s.cron,
            time_zone: s.time_zone,
            kind: s.kind,
            queue: s.queue,
            priority: s.priority,
            missed,
            active: s.active,
            declared_at: s.declared_at.into(),
            declared_by: s.declared_by,
            last_tick: s.last_tick.into(),
            last_run_at: s.last_run_at.map(SystemTime::from),
            next_run,
            runs: s.runs,
            skipped: s.skipped,
        }
    }
}

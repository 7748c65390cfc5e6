//! Periodic (cron) jobs: what an application declares on the builder, validated into the
//! definition engines store and fire.
//!
//! Every engine that declares a schedule fires it; none is a leader. Each schedule's row
//! keeps the last tick dealt with, and a pass inserts a tick's job in the same statement
//! that advances that tick by compare-and-set, so engines racing for one tick insert one
//! job (see `store/sql/schedule_fire.sql`). The definition fired is the stored one, which
//! the newest declaration wrote (an engine writes its definition when it starts), so
//! engines running two versions of a schedule during a rolling deploy do not fight.

mod listing;
pub(crate) mod ticks;

use std::time::Duration;

use crate::commands::Enqueue;
use crate::enqueue::NewJob;
use crate::error::{Error, Result};
use crate::job::Job;
pub(crate) use crate::store::schedules::ScheduleSpec;

pub use listing::ScheduleStats;
pub use ticks::Missed;
pub(crate) use ticks::{plan, CronTicks};

/// Default lateness after which [`Missed::Skip`] treats a tick as missed.
pub const DEFAULT_GRACE: Duration = Duration::from_secs(2);

/// A periodic job, declared with [`EngineBuilder::schedule`](crate::EngineBuilder::schedule).
///
/// ```
/// use pglane::{Enqueue, Job, JobContext, JobError, Missed, Schedule};
/// # #[derive(serde::Serialize, serde::Deserialize)] struct NightlyReport;
/// # impl Job for NightlyReport {
/// #     const KIND: &'static str = "nightly_report";
/// #     async fn run(self, _: JobContext) -> Result<(), JobError> { Ok(()) }
/// # }
/// let nightly = Schedule::new("nightly-report", "0 2 * * *")
///     .time_zone("America/Vancouver")
///     .job(Enqueue::new(NightlyReport).priority(50))
///     .missed(Missed::Coalesce);
/// # let _ = nightly;
/// ```
#[derive(Debug, Clone)]
pub struct Schedule {
    pub(crate) name: String,
    pub(crate) cron: String,
    pub(crate) time_zone: String,
    pub(crate) job: Option<Result<NewJob, JobInvalid>>,
    pub(crate) missed: Missed,
    pub(crate) grace: Duration,
    pub(crate) run_on_start: bool,
}

impl Schedule {
    /// A schedule named `name` (1 to 63 of a-z, 0-9, `_`, `-`; unique in the schema)
    /// firing on the cron expression `cron`: 5 fields (minute hour day-of-month month
    /// day-of-week), or 6 with seconds first, or an alias (`@yearly`, `@monthly`,
    /// `@weekly`, `@daily`, `@hourly`). Set its job with [`job`](Self::job).
    pub fn new(name: impl Into<String>, cron: impl Into<String>) -> Self {
        Schedule {
            name: name.into(),
            cron: cron.into(),
            time_zone: "UTC".into(),
            job: None,
            missed: Missed::Skip,
            grace: DEFAULT_GRACE,
            run_on_start: false,
        }
    }

    /// The IANA time zone the expression is read in, e.g. `Europe/Paris`. Defaults to
    /// `UTC`. Daylight-saving changes follow croner: a tick in the skipped hour runs at
    /// the first valid time after it, a tick in the repeated hour runs once.
    pub fn time_zone(mut self, zone: impl Into<String>) -> Self {
        self.time_zone = zone.into();
        self
    }

    /// The job each tick enqueues: its kind, args and options (priority, queue, max
    /// attempts, timeout, unique key). Required. Its `run_at` is the tick, so `run_at`
    /// and `delay` may not be set. With a unique key, a tick whose previous run is still
    /// live enqueues nothing (the tick still counts as dealt with).
    pub fn job<J: Job>(mut self, job: Enqueue<J>) -> Self {
        self.job = Some(job.validate().map_err(|e| match e {
            Error::InvalidJob(r) => JobInvalid::Rejected(r),
            other => JobInvalid::Other(other.to_string()),
        }));
        self
    }

    /// What to do with ticks missed while no engine could enqueue them. Defaults to
    /// [`Missed::Skip`].
    pub fn missed(mut self, policy: Missed) -> Self {
        self.missed = policy;
        self
    }

    /// How late a tick may be enqueued and still count as on time under
    /// [`Missed::Skip`]. Defaults to [`DEFAULT_GRACE`] (2 s).
    pub fn grace(mut self, d: Duration) -> Self {
        self.grace = d;
        self
    }

    /// Also enqueue one run when an engine starts with this schedule and either its
    /// definition differs from the stored one (a deployment that changed it) or no
    /// engine was running it (all had stopped). Engines starting together with the same
    /// definition enqueue that run once. Defaults to off.
    pub fn run_on_start(mut self) -> Self {
        self.run_on_start = true;
        self
    }

    /// The schedule's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Validates the declaration into what the store writes.
    pub(crate) fn validate(&self) -> Result<ScheduleSpec> {
        validate_name(&self.name)?;
        CronTicks::parse(&self.name, &self.cron, &self.time_zone)?;
        let job = match &self.job {
            None => {
                return Err(Error::InvalidConfig(format!(
                    "schedule `{}` has no job: call `.job(Enqueue::new(…))`",
                    self.name
                )))
            }
            // A job the enqueue API would reject fails the same way.
            Some(Err(JobInvalid::Rejected(r))) => return Err(Error::InvalidJob(r.clone())),
            Some(Err(JobInvalid::Other(e))) => {
                return Err(Error::InvalidConfig(format!(
                    "schedule `{}`: {e}",
                    self.name
                )))
            }
            Some(Ok(job)) => job.clone(),
        };
        if job.run_at.is_some() || job.delay_s.is_some() {
            return Err(Error::InvalidConfig(format!(
                "schedule `{}`: its job's run_at is its tick; do not set run_at or delay",
                self.name
            )));
        }
        if let Missed::CatchUp(0) = self.missed {
            return Err(Error::InvalidConfig(format!(
                "schedule `{}`: catch_up(0) would never run a missed tick; use Missed::Skip",
                self.name
            )));
        }
        let grace_ms = i32::try_from(self.grace.as_millis())
            .ok()
            .filter(|ms| *ms <= 86_400_000)
            .ok_or_else(|| {
                Error::InvalidConfig(format!(
                    "schedule `{}`: grace may be at most 24 h",
                    self.name
                ))
            })?;
        let catch_up_max = i32::try_from(self.missed.max()).map_err(|_| {
            Error::InvalidConfig(format!(
                "schedule `{}`: catch_up bound too large",
                self.name
            ))
        })?;
        Ok(ScheduleSpec {
            name: self.name.clone(),
            cron: self.cron.trim().to_string(),
            time_zone: self.time_zone.clone(),
            job,
            missed: self.missed.name(),
            catch_up_max,
            grace_ms,
            run_on_start: self.run_on_start,
        })
    }
}

/// Why a schedule's job did not validate (kept until `start` reports it).
#[derive(Debug, Clone)]
pub(crate) enum JobInvalid {
    Rejected(crate::validate::Rejection),
    Other(String),
}

/// A schedule name: what `validate::identifier` accepts, plus `-`.
fn validate_name(name: &str) -> Result<()> {
    let ok = !name.is_empty()
        && name.len() <= 63
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'-');
    if ok {
        Ok(())
    } else {
        Err(Error::InvalidConfig(format!(
            "invalid schedule name {name:?}: use 1 to 63 of a-z, 0-9, _ and -"
        )))
    }
}

/// Validates every declaration and checks names are unique.
pub(crate) fn validate_all(schedules: &[Schedule]) -> Result<Vec<ScheduleSpec>> {
    let mut specs: Vec<ScheduleSpec> = Vec::with_capacity(schedules.len());
    for s in schedules {
        let spec = s.validate()?;
        if specs.iter().any(|o| o.name == spec.name) {
            return Err(Error::InvalidConfig(format!(
                "schedule `{}` is declared twice",
                spec.name
            )));
        }
        specs.push(spec);
    }
    Ok(specs)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::job::{JobContext, JobError};

    #[derive(serde::Serialize, serde::Deserialize)]
    struct Tick;
    impl Job for Tick {
        const KIND: &'static str = "tick";
        async fn run(self, _: JobContext) -> std::result::Result<(), JobError> {
            Ok(())
        }
    }

    fn ok() -> Schedule {
        Schedule::new("every-second", "* * * * * *").job(Enqueue::new(Tick))
    }

    #[test]
    fn a_complete_declaration_validates() {
        let spec = ok().missed(Missed::CatchUp(3)).validate().expect("valid");
        assert_eq!(spec.job.kind, "tick");
        assert_eq!((spec.missed, spec.catch_up_max), ("catch_up", 3));
        assert_eq!(spec.grace_ms, 2000);
    }

    #[test]
    fn bad_declarations_are_typed_errors() {
        let cron = ok().validate_with_cron("0 25 * * *");
        assert!(matches!(cron, Err(Error::InvalidCron { .. })), "{cron:?}");
        let tz = ok().time_zone("Europe/Atlantis").validate();
        assert!(matches!(tz, Err(Error::UnknownTimeZone { .. })), "{tz:?}");
        for bad in [
            Schedule::new("no-job", "* * * * *"),
            Schedule::new("Bad Name", "* * * * *").job(Enqueue::new(Tick)),
            ok().missed(Missed::CatchUp(0)),
            Schedule::new("later", "* * * * *")
                .job(Enqueue::new(Tick).delay(Duration::from_secs(1))),
        ] {
            let e = bad.validate().unwrap_err();
            assert!(matches!(e, Error::InvalidConfig(_)), "{e}");
        }
        let neg = Schedule::new("neg", "* * * * *").job(Enqueue::new(Tick).priority(-1));
        assert!(matches!(neg.validate(), Err(Error::InvalidJob(_))));
        let twice = validate_all(&[ok(), ok()]).unwrap_err();
        assert!(twice.to_string().contains("declared twice"), "{twice}");
    }

    impl Schedule {
        fn validate_with_cron(mut self, cron: &str) -> Result<ScheduleSpec> {
            self.cron = cron.into();
            self.validate()
        }
    }
}

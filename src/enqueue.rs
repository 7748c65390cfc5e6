//! Enqueueing: the [`Enqueue`] message, job options, and their validation into the row
//! the store inserts.

use std::time::{Duration, SystemTime};

use actix::Message;

use crate::error::{Error, Result};
use crate::job::Job;
use crate::validate;

/// Priority used when none is given (lower is more urgent).
pub const DEFAULT_PRIORITY: i16 = 100;

/// Queue used when none is given.
pub const DEFAULT_QUEUE: &str = "default";

/// Options for one job. Every setter's default is in its doc.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct JobOptions {
    priority: Option<i64>,
    run_at: Option<SystemTime>,
    delay: Option<Duration>,
    max_attempts: Option<i64>,
    queue: Option<String>,
    unique_key: Option<String>,
    timeout: Option<Duration>,
}

impl JobOptions {
    /// Priority, 0 (most urgent) to 32767. Defaults to 100.
    pub fn priority(mut self, p: i64) -> Self {
        self.priority = Some(p);
        self
    }

    /// Run no earlier than this time (checked against the database clock). Defaults to
    /// now. Overrides [`delay`](Self::delay).
    pub fn run_at(mut self, at: SystemTime) -> Self {
        self.run_at = Some(at);
        self
    }

    /// Run no earlier than this long after the insert commits (database clock).
    /// Defaults to zero.
    pub fn delay(mut self, d: Duration) -> Self {
        self.delay = Some(d);
        self
    }

    /// Attempts before the job fails for good, 1 to 1000. Defaults to the kind's
    /// [`Job::MAX_ATTEMPTS`] (20 unless the kind says otherwise).
    pub fn max_attempts(mut self, n: i64) -> Self {
        self.max_attempts = Some(n);
        self
    }

    /// The queue, a lower-case identifier. Defaults to `"default"`; an engine only
    /// claims from its own queue.
    pub fn queue(mut self, name: impl Into<String>) -> Self {
        self.queue = Some(name.into());
        self
    }

    /// A key no two live (available or running) jobs may share. Enqueueing a job whose
    /// key is taken returns the live job's id instead of inserting. Defaults to none.
    pub fn unique_key(mut self, key: impl Into<String>) -> Self {
        self.unique_key = Some(key.into());
        self
    }

    /// How long one run may take. Defaults to the kind's [`Job::TIMEOUT`], else the
    /// engine's job timeout.
    pub fn timeout(mut self, t: Duration) -> Self {
        self.timeout = Some(t);
        self
    }

    /// Validates the options and serializes `job` into the row to insert.
    pub(crate) fn into_new_job<J: Job>(self, job: &J) -> Result<NewJob> {
        validate::kind(J::KIND)?;
        let args = validate::serialize_args(job, validate::MAX_ARGS_BYTES)?;
        let priority = validate::priority(self.priority.unwrap_or(i64::from(DEFAULT_PRIORITY)))?;
        let max_attempts =
            validate::max_attempts(self.max_attempts.unwrap_or(i64::from(J::MAX_ATTEMPTS)))?;
        let queue = self.queue.unwrap_or_else(|| DEFAULT_QUEUE.to_string());
        validate::identifier("queue", &queue)?;
        if let Some(at) = self.run_at {
            validate::run_at(at, SystemTime::now())?;
        }
        if let Some(d) = self.delay {
            validate::delay(d)?;
        }
        let timeout_ms = self
            .timeout
            .or(J::TIMEOUT)
            .map(validate::timeout)
            .transpose()?;
        if let Some(key) = &self.unique_key {
            validate::unique_key(key)?;
        }
        Ok(NewJob {
            kind: J::KIND.to_string(),
            queue,
            priority,
            args,
            max_attempts,
            run_at: self.run_at,
            delay_s: if self.run_at.is_none() {
                self.delay.map(|d| d.as_secs_f64())
            } else {
                None
            },
            timeout_ms,
            unique_key: self.unique_key,
        })
    }
}

/// A validated job, ready to insert.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct NewJob {
    pub(crate) kind: String,
    pub(crate) queue: String,
    pub(crate) priority: i16,
    pub(crate) args: String,
    pub(crate) max_attempts: i32,
    pub(crate) run_at: Option<SystemTime>,
    pub(crate) delay_s: Option<f64>,
    pub(crate) timeout_ms: Option<i32>,
    pub(crate) unique_key: Option<String>,
}

/// Message to the [`JobSupervisor`](crate::JobSupervisor): insert a job and wake the
/// workers. Answers the job's id (or, with a taken unique key, the live job's id).
///
/// ```no_run
/// # use pglane::{Enqueue, Job, JobContext, JobError, JobSupervisor};
/// # use serde::{Deserialize, Serialize};
/// # #[derive(Serialize, Deserialize)] struct SendEmail { to: String }
/// # impl Job for SendEmail { const KIND: &'static str = "send_email";
/// #   async fn run(self, _: JobContext) -> Result<(), JobError> { Ok(()) } }
/// # async fn f(supervisor: actix::Addr<JobSupervisor>) -> pglane::Result<()> {
/// let id = supervisor
///     .send(Enqueue::new(SendEmail { to: "a@example.com".into() }).priority(5))
///     .await??;
/// # Ok(()) }
/// ```
///
/// Use `send(..).await` when you need the id or the error; `do_send` drops both.
#[derive(Debug, Clone)]
pub struct Enqueue<J: Job> {
    pub(crate) job: J,
    pub(crate) options: JobOptions,
}

impl<J: Job> Enqueue<J> {
    /// A job with default options.
    pub fn new(job: J) -> Self {
        Enqueue {
            job,
            options: JobOptions::default(),
        }
    }

    /// Sets all options at once.
    pub fn options(mut self, options: JobOptions) -> Self {
        self.options = options;
        self
    }

    /// See [`JobOptions::priority`].
    pub fn priority(mut self, p: i64) -> Self {
        self.options = self.options.priority(p);
        self
    }

    /// See [`JobOptions::run_at`].
    pub fn run_at(mut self, at: SystemTime) -> Self {
        self.options = self.options.run_at(at);
        self
    }

    /// See [`JobOptions::delay`].
    pub fn delay(mut self, d: Duration) -> Self {
        self.options = self.options.delay(d);
        self
    }

    /// See [`JobOptions::max_attempts`].
    pub fn max_attempts(mut self, n: i64) -> Self {
        self.options = self.options.max_attempts(n);
        self
    }

    /// See [`JobOptions::queue`].
    pub fn queue(mut self, name: impl Into<String>) -> Self {
        self.options = self.options.queue(name);
        self
    }

    /// See [`JobOptions::unique_key`].
    pub fn unique_key(mut self, key: impl Into<String>) -> Self {
        self.options = self.options.unique_key(key);
        self
    }

    /// See [`JobOptions::timeout`].
    pub fn timeout(mut self, t: Duration) -> Self {
        self.options = self.options.timeout(t);
        self
    }

    pub(crate) fn validate(self) -> Result<NewJob> {
        self.options.into_new_job(&self.job)
    }
}

impl<J: Job> Message for Enqueue<J> {
    type Result = Result<i64>;
}

/// Validates many jobs of one kind; the first rejection rejects the whole batch.
pub(crate) fn validate_many<J: Job>(
    jobs: impl IntoIterator<Item = Enqueue<J>>,
) -> Result<Vec<NewJob>> {
    jobs.into_iter()
        .map(Enqueue::validate)
        .collect::<Result<Vec<_>, Error>>()
}

/// The priority to wake workers with after inserting `jobs`: the most urgent of those
/// due at once. `None` when all are scheduled for later (the poll finds those).
pub(crate) fn wake_hint(jobs: &[NewJob]) -> Option<i16> {
    jobs.iter()
        .filter(|j| j.run_at.is_none() && j.delay_s.is_none())
        .map(|j| j.priority)
        .min()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{JobContext, JobError};
    use serde::{Deserialize, Serialize};

    #[derive(Serialize, Deserialize)]
    struct Ping {
        text: String,
        ratio: f64,
    }

    impl Job for Ping {
        const KIND: &'static str = "ping";
        const MAX_ATTEMPTS: i32 = 3;
        async fn run(self, _: JobContext) -> Result<(), JobError> {
            Ok(())
        }
    }

    fn ping() -> Ping {
        Ping {
            text: "hi".into(),
            ratio: 0.5,
        }
    }

    #[test]
    fn defaults() {
        let n = Enqueue::new(ping()).validate().unwrap();
        assert_eq!(n.priority, DEFAULT_PRIORITY);
        assert_eq!(n.max_attempts, 3, "the kind's MAX_ATTEMPTS");
        assert_eq!(n.queue, "default");
        assert_eq!(n.args, r#"{"text":"hi","ratio":0.5}"#);
        assert_eq!((n.run_at, n.delay_s, n.timeout_ms), (None, None, None));
    }

    #[test]
    fn options_apply() {
        let n = Enqueue::new(ping())
            .priority(0)
            .delay(Duration::from_millis(1500))
            .max_attempts(7)
            .queue("mail")
            .unique_key("k1")
            .timeout(Duration::from_secs(2))
            .validate()
            .unwrap();
        assert_eq!(
            (n.priority, n.max_attempts, n.queue.as_str()),
            (0, 7, "mail")
        );
        assert_eq!(
            (n.delay_s, n.timeout_ms, n.unique_key.as_deref()),
            (Some(1.5), Some(2000), Some("k1"))
        );
    }

    #[test]
    fn wake_hint_is_the_most_urgent_due_priority() {
        let jobs = validate_many([
            Enqueue::new(ping()).priority(7),
            Enqueue::new(ping())
                .priority(3)
                .delay(Duration::from_secs(1)),
            Enqueue::new(ping()).priority(5),
        ])
        .unwrap();
        assert_eq!(wake_hint(&jobs), Some(5), "the delayed job does not count");
        assert_eq!(wake_hint(&jobs[1..2]), None);
        assert_eq!(wake_hint(&[]), None);
    }

    #[test]
    fn every_bad_input_is_a_typed_rejection() {
        use crate::validate::Rejection as R;
        let bad = |e: Enqueue<Ping>| match e.validate() {
            Err(Error::InvalidJob(r)) => r,
            other => panic!("expected a rejection, got {other:?}"),
        };
        assert_eq!(
            bad(Enqueue::new(Ping {
                text: "a\0".into(),
                ratio: 0.0
            })),
            R::NulInArgs
        );
        assert_eq!(
            bad(Enqueue::new(Ping {
                text: "a".into(),
                ratio: f64::NAN
            })),
            R::NonFiniteNumber
        );
        let huge = "x".repeat(validate::MAX_ARGS_BYTES);
        assert!(matches!(
            bad(Enqueue::new(Ping {
                text: huge,
                ratio: 0.0
            })),
            R::ArgsTooLarge { .. }
        ));
        assert_eq!(
            bad(Enqueue::new(ping()).priority(-1)),
            R::PriorityOutOfRange(-1)
        );
        assert_eq!(
            bad(Enqueue::new(ping()).priority(40_000)),
            R::PriorityOutOfRange(40_000)
        );
        assert_eq!(
            bad(Enqueue::new(ping()).max_attempts(0)),
            R::MaxAttemptsOutOfRange(0)
        );
        let y9999 = SystemTime::UNIX_EPOCH + Duration::from_secs(253_370_764_800);
        assert!(matches!(
            bad(Enqueue::new(ping()).run_at(y9999)),
            R::ScheduleOutOfRange(_)
        ));
        assert!(matches!(
            bad(Enqueue::new(ping()).delay(Duration::MAX)),
            R::ScheduleOutOfRange(_)
        ));
        assert!(matches!(
            bad(Enqueue::new(ping()).queue("Mail")),
            R::InvalidName { what: "queue", .. }
        ));
        assert!(matches!(
            bad(Enqueue::new(ping()).queue("a;b")),
            R::InvalidName { .. }
        ));
        assert!(matches!(
            bad(Enqueue::new(ping()).unique_key("")),
            R::InvalidName { .. }
        ));
        assert!(matches!(
            bad(Enqueue::new(ping()).timeout(Duration::ZERO)),
            R::TimeoutOutOfRange(_)
        ));
    }
}

//! The messages applications send the [`JobSupervisor`](crate::JobSupervisor): enqueue,
//! cancel, retry, lane tuning, stats and shutdown.
//!
//! Send them with `supervisor.send(msg).await` to learn the result; `do_send` is fine
//! for fire-and-forget tuning. The [`Engine`](crate::Engine) handle wraps each one in a
//! method, and both go through the same implementation.

use std::time::{Duration, SystemTime};

use actix::Message;

use crate::enqueue::{JobOptions, KindDefaults, NewJob};
use crate::error::{Error, Result};
use crate::job::Job;
use crate::stats::EngineStats;

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
    pub fn priority(mut self, p: i16) -> Self {
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
    pub fn max_attempts(mut self, n: i32) -> Self {
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

    /// See [`JobOptions::traceparent`].
    pub fn traceparent(mut self, traceparent: impl Into<String>) -> Self {
        self.options = self.options.traceparent(traceparent);
        self
    }

    /// See [`JobOptions::timeout`].
    pub fn timeout(mut self, t: Duration) -> Self {
        self.options = self.options.timeout(t);
        self
    }

    pub(crate) fn validate(self) -> Result<NewJob> {
        let defaults = KindDefaults {
            max_attempts: J::MAX_ATTEMPTS,
            timeout: J::TIMEOUT,
        };
        self.options.into_new_job(J::KIND, defaults, &self.job)
    }
}

impl crate::flow::FlowJob {
    /// A job called `reference` within its flow (unique there; other jobs name it in
    /// [`after`](Self::after)). Its options are those of `enqueue`, except a unique key.
    pub fn new<J: Job>(reference: impl Into<String>, enqueue: Enqueue<J>) -> Self {
        let job = enqueue.validate().and_then(|j| match j.unique_key {
            Some(_) => Err(Error::InvalidFlow(
                "a job of a flow cannot have a unique key".into(),
            )),
            None => Ok(j),
        });
        crate::flow::FlowJob {
            reference: reference.into(),
            job,
            after: Vec::new(),
            run_if_parent_fails: false,
        }
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

/// Stop claiming for a lane; its running jobs finish normally. Answers once the lane has
/// no claim in flight, so no job enqueued after that starts in it until [`Resume`].
#[derive(Debug, Clone)]
pub struct Pause(pub String);

impl Message for Pause {
    type Result = Result<()>;
}

/// Start claiming for a paused lane again (at once, not at the next poll).
#[derive(Debug, Clone)]
pub struct Resume(pub String);

impl Message for Resume {
    type Result = Result<()>;
}

/// Change a lane's slots. Raising it claims at once; lowering it lets running jobs finish
/// and replaces them only once the lane is under its new limit.
#[derive(Debug, Clone)]
pub struct SetConcurrency {
    /// The lane's name.
    pub lane: String,
    /// New number of slots, at least 1 (use [`Pause`] to stop a lane).
    pub slots: u32,
}

impl Message for SetConcurrency {
    type Result = Result<()>;
}

/// Cancel a job, running or not: see [`Engine::cancel`](crate::Engine::cancel).
#[derive(Debug, Clone)]
pub struct Cancel {
    /// The job.
    pub id: i64,
    /// Why, recorded in the job's history. Defaults to none.
    pub reason: Option<String>,
}

impl Cancel {
    /// Cancel job `id`, with no reason given.
    pub fn new(id: i64) -> Self {
        Cancel { id, reason: None }
    }

    /// Records why.
    pub fn reason(mut self, reason: impl Into<String>) -> Self {
        self.reason = Some(reason.into());
        self
    }
}

impl Message for Cancel {
    type Result = Result<crate::CancelOutcome>;
}

/// Put a failed or cancelled job back in the queue with fresh attempts. Answers whether
/// it was found.
#[derive(Debug, Clone, Copy)]
pub struct Retry(pub i64);

impl Message for Retry {
    type Result = Result<bool>;
}

/// Ask for the engine's statistics.
#[derive(Debug, Clone, Copy)]
pub struct Stats;

impl Message for Stats {
    type Result = Result<EngineStats>;
}

/// Stop the engine gracefully: stop claiming, let running jobs finish within the grace
/// period (the engine's `shutdown_grace` unless given), then return unfinished jobs to
/// `available` without using an attempt, write every outcome, and stop the actors.
#[derive(Debug, Clone, Copy, Default)]
pub struct Shutdown {
    /// Overrides the engine's grace period.
    pub grace: Option<Duration>,
}

impl Message for Shutdown {
    type Result = Result<ShutdownReport>;
}

/// What a graceful shutdown did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct ShutdownReport {
    /// Jobs that were running when shutdown began and finished within the grace period.
    pub finished: usize,
    /// Jobs still running at the deadline, returned to `available` (attempt given back).
    pub released: usize,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::enqueue::{wake_hint, DEFAULT_PRIORITY};
    use crate::validate;
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

//! The job trait, the context a handler gets, and what a handler can answer.

use std::any::{Any, TypeId};
use std::collections::HashMap;
use std::fmt;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use futures_util::future::BoxFuture;
use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::outcome::{FailureCause, RunResult};
use crate::store::Pool;
use crate::trace_context::TraceParent;

/// A kind of background work. Its fields are the job's args, stored as `jsonb`.
///
/// ```
/// use pglane::{Job, JobContext, JobError};
/// use serde::{Deserialize, Serialize};
///
/// #[derive(Serialize, Deserialize)]
/// struct SendEmail { to: String, template: String }
///
/// impl Job for SendEmail {
///     const KIND: &'static str = "send_email";
///     async fn run(self, ctx: JobContext) -> Result<(), JobError> {
///         println!("attempt {} of job {}: mail {}", ctx.attempt(), ctx.id(), self.to);
///         Ok(())
///     }
/// }
/// ```
///
/// Execution is at least once: a job whose worker dies mid-run is run again after its
/// lease expires, so make handlers idempotent. Completion is recorded exactly once.
pub trait Job: Serialize + DeserializeOwned + Send + 'static {
    /// The name stored in the `kind` column; unique per job type, stable across releases.
    const KIND: &'static str;

    /// Attempts before the job is failed for good. Defaults to 20. A job's own
    /// `max_attempts` option overrides it.
    const MAX_ATTEMPTS: i32 = 20;

    /// How long one run may take before it counts as a failed attempt. `None` (the
    /// default) uses the engine's `job_timeout`. A job's own `timeout` option overrides it.
    const TIMEOUT: Option<Duration> = None;

    /// Does the work. Return `Ok(())` on success, or a [`JobError`] to retry, cancel or
    /// snooze. A panic counts as a failed attempt.
    fn run(self, ctx: JobContext) -> impl Future<Output = Result<(), JobError>> + Send;
}

/// What a handler answers instead of success.
///
/// Any `std::error::Error` converts into [`JobError::Retry`], so `?` works in handlers.
#[non_exhaustive]
pub enum JobError {
    /// The attempt failed; retry with backoff until `max_attempts` is used up.
    Retry(String),
    /// Give up now: the job ends `failed` with this reason, whatever attempts remain.
    Cancel(String),
    /// Not now: run again after this delay without using an attempt.
    Snooze(Duration),
}

impl JobError {
    /// A failed attempt that should be retried.
    pub fn retry(reason: impl fmt::Display) -> Self {
        JobError::Retry(reason.to_string())
    }

    /// A final failure: no more attempts.
    pub fn cancel(reason: impl fmt::Display) -> Self {
        JobError::Cancel(reason.to_string())
    }

    /// Run again after `delay`, without using an attempt.
    pub fn snooze(delay: Duration) -> Self {
        JobError::Snooze(delay)
    }
}

impl fmt::Debug for JobError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            JobError::Retry(m) => write!(f, "Retry({m:?})"),
            JobError::Cancel(m) => write!(f, "Cancel({m:?})"),
            JobError::Snooze(d) => write!(f, "Snooze({d:?})"),
        }
    }
}

impl fmt::Display for JobError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            JobError::Retry(m) => write!(f, "retry: {m}"),
            JobError::Cancel(m) => write!(f, "cancel: {m}"),
            JobError::Snooze(d) => write!(f, "snooze for {d:?}"),
        }
    }
}

impl<E: std::error::Error + Send + Sync + 'static> From<E> for JobError {
    fn from(e: E) -> Self {
        JobError::Retry(e.to_string())
    }
}

/// How a run ended, from its handler's answer (the outcome decision takes it from
/// there). Kept here, beside [`JobError`], so the outcome rules need not know the
/// handler-facing type.
pub(crate) fn run_result(answer: Result<(), JobError>) -> RunResult {
    match answer {
        Ok(()) => RunResult::Succeeded,
        Err(JobError::Retry(error)) => RunResult::Failed {
            error,
            cause: FailureCause::Error,
        },
        Err(JobError::Cancel(reason)) => RunResult::Cancelled(reason),
        Err(JobError::Snooze(d)) => RunResult::Snoozed(d),
    }
}

/// Shared values handed to every handler through [`JobContext::data`], registered with
/// [`EngineBuilder::data`](crate::EngineBuilder::data).
#[derive(Default, Clone)]
pub(crate) struct DataMap(HashMap<TypeId, Arc<dyn Any + Send + Sync>>);

impl DataMap {
    pub(crate) fn insert<T: Any + Send + Sync>(&mut self, value: T) {
        self.0.insert(TypeId::of::<T>(), Arc::new(value));
    }

    fn get<T: Any + Send + Sync>(&self) -> Option<&T> {
        self.0
            .get(&TypeId::of::<T>())
            .and_then(|v| v.downcast_ref::<T>())
    }
}

/// What a handler knows about the run it is in.
#[derive(Clone)]
pub struct JobContext {
    pub(crate) id: i64,
    pub(crate) kind: &'static str,
    pub(crate) attempt: i32,
    pub(crate) token: i64,
    pub(crate) max_attempts: i32,
    pub(crate) priority: i16,
    pub(crate) lane: Arc<str>,
    pub(crate) pool: Pool,
    pub(crate) data: Arc<DataMap>,
    /// The engine's enqueue, for jobs that enqueue jobs.
    pub(crate) ops: Arc<crate::ops::Ops>,
    pub(crate) queue: Arc<str>,
    /// The trace context the job was enqueued under.
    pub(crate) traceparent: Option<Arc<str>>,
    /// Becomes true when a user asks to cancel this run.
    pub(crate) cancel: tokio::sync::watch::Receiver<bool>,
}

impl JobContext {
    /// The job's id.
    pub fn id(&self) -> i64 {
        self.id
    }

    /// The job's kind ([`Job::KIND`]).
    pub fn kind(&self) -> &'static str {
        self.kind
    }

    /// This attempt's number, from 1. A run interrupted by a lost worker is not counted.
    pub fn attempt(&self) -> i32 {
        self.attempt
    }

    /// The lease token this run holds: together with [`id`](Self::id) it identifies
    /// the run (two runs of one job, e.g. after a rescue, have different tokens).
    pub fn lease_token(&self) -> i64 {
        self.token
    }

    /// Attempts allowed in all.
    pub fn max_attempts(&self) -> i32 {
        self.max_attempts
    }

    /// The job's priority (lower is more urgent).
    pub fn priority(&self) -> i16 {
        self.priority
    }

    /// The lane that claimed the job.
    pub fn lane(&self) -> &str {
        &self.lane
    }

    /// The engine's connection pool, for the handler's own queries.
    pub fn pool(&self) -> &Pool {
        &self.pool
    }

    /// Enqueues a job from inside a handler, through the engine running this one (same
    /// schema, same validation and wake-up as [`Engine::enqueue`](crate::Engine::enqueue)).
    /// Returns its id.
    ///
    /// The new job continues this job's trace: unless it was given a
    /// [`traceparent`](crate::Enqueue::traceparent), it gets this job's trace id (see
    /// [`traceparent`](Self::traceparent)).
    pub async fn enqueue<J: Job>(&self, job: crate::Enqueue<J>) -> crate::Result<i64> {
        let mut job = job.validate()?;
        if job.traceparent.is_none() {
            job.traceparent = self
                .traceparent
                .as_deref()
                .and_then(TraceParent::parse)
                .map(|tp| tp.child().to_string());
        }
        self.ops.enqueue(job).await
    }

    /// The queue the job is in.
    pub fn queue(&self) -> &str {
        &self.queue
    }

    /// The W3C trace context (`traceparent`) the job was enqueued under, if any: the
    /// run's span links to it, and a handler can pass it on (an HTTP header to the
    /// service it calls). Stored with the job, so it survives retries and restarts.
    pub fn traceparent(&self) -> Option<&str> {
        self.traceparent.as_deref()
    }

    /// Enqueues a [`Flow`](crate::Flow) from inside a handler, like
    /// [`Engine::enqueue_flow`](crate::Engine::enqueue_flow). Returns the ids in the
    /// order the jobs were added.
    pub async fn enqueue_flow(&self, flow: crate::Flow) -> crate::Result<Vec<i64>> {
        self.ops.enqueue_flow(flow).await
    }

    /// A shared value registered with [`EngineBuilder::data`](crate::EngineBuilder::data).
    pub fn data<T: Any + Send + Sync>(&self) -> Option<&T> {
        self.data.get::<T>()
    }

    /// Resolves when a user asks to cancel this run ([`Engine::cancel`], the `Cancel`
    /// message, `pglane cancel`, SQL `cancel()`), from any process. Select on it to stop
    /// early and clean up: the run is aborted anyway once the engine's `cancel_grace`
    /// has passed, and the job ends `cancelled` whatever the handler then answers
    /// (it is not retried). Never resolves for a run nobody cancels.
    ///
    /// ```
    /// # use pglane::{JobContext, JobError};
    /// # async fn work() {}
    /// async fn run(ctx: JobContext) -> Result<(), JobError> {
    ///     tokio::select! {
    ///         _ = work() => Ok(()),
    ///         _ = ctx.cancelled() => Err(JobError::cancel("stopped on request")),
    ///     }
    /// }
    /// ```
    ///
    /// [`Engine::cancel`]: crate::Engine::cancel
    pub async fn cancelled(&self) {
        let mut rx = self.cancel.clone();
        if rx.wait_for(|c| *c).await.is_err() {
            // The run is over for the engine (its sender is gone): nothing will come.
            std::future::pending::<()>().await;
        }
    }

    /// Whether a user asked to cancel this run (see [`cancelled`](Self::cancelled)).
    pub fn is_cancelled(&self) -> bool {
        *self.cancel.borrow()
    }
}

/// A registered job type, with its type erased so the engine can hold many.
pub(crate) trait Runner: Send + Sync {
    fn run(&self, args: &[u8], ctx: JobContext) -> BoxFuture<'static, Result<(), JobError>>;
}

struct TypedRunner<J>(std::marker::PhantomData<fn() -> J>);

impl<J: Job> Runner for TypedRunner<J> {
    fn run(&self, args: &[u8], ctx: JobContext) -> BoxFuture<'static, Result<(), JobError>> {
        match serde_json::from_slice::<J>(args) {
            Ok(job) => Box::pin(job.run(ctx)),
            Err(e) => {
                let msg = format!("stored args do not deserialize as `{}`: {e}", J::KIND);
                Box::pin(std::future::ready(Err(JobError::Retry(msg))))
            }
        }
    }
}

/// One registered kind.
#[derive(Clone)]
pub(crate) struct Registration {
    pub(crate) kind: &'static str,
    pub(crate) runner: Arc<dyn Runner>,
    pub(crate) timeout: Option<Duration>,
}

impl Registration {
    pub(crate) fn of<J: Job>() -> Self {
        Registration {
            kind: J::KIND,
            runner: Arc::new(TypedRunner::<J>(std::marker::PhantomData)),
            timeout: J::TIMEOUT,
        }
    }
}

/// The kinds this process can run, by name.
#[derive(Clone, Default)]
pub(crate) struct Registry(HashMap<&'static str, Registration>);

impl Registry {
    pub(crate) fn add(&mut self, r: Registration) {
        self.0.insert(r.kind, r);
    }

    pub(crate) fn get(&self, kind: &str) -> Option<&Registration> {
        self.0.get(kind)
    }

    pub(crate) fn kinds(&self) -> Vec<String> {
        let mut k: Vec<String> = self.0.keys().map(|s| s.to_string()).collect();
        k.sort();
        k
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub(crate) fn iter(&self) -> impl Iterator<Item = &Registration> {
        self.0.values()
    }
}

//! One path per operation: enqueue, cancel and retry, shared by the [`Engine`]
//! methods and the supervisor's message handlers, so both do exactly the same steps.
//!
//! [`Engine`]: crate::Engine

use std::sync::Arc;

use tracing::Instrument;

use crate::cancel::CancelOutcome;
use crate::enqueue::{wake_hint, NewJob};
use crate::error::Result;
use crate::flow::Flow;
use crate::lane::NotifyGate;
use crate::store::Store;
use crate::telemetry::spans::{fill_trace_context, send_span};

/// Wakes this engine's lanes that can take a priority (all if `None`): given by the
/// supervisor, which sends itself its `WakeLanes` message.
pub(crate) type WakeLanes = Arc<dyn Fn(Option<i16>) + Send + Sync>;

/// The engine's write operations on jobs: the store, the NOTIFY gate, and the wake-up
/// for this process's own lanes. Cheap to clone.
#[derive(Clone)]
pub(crate) struct Ops {
    store: Store,
    gate: Arc<NotifyGate>,
    /// Wakes this engine's lanes at once, rather than after the NOTIFY round trip.
    wake: WakeLanes,
    /// Who asks, in the history of a job this engine cancels.
    requester: Arc<str>,
}

impl Ops {
    pub(crate) fn new(
        store: Store,
        gate: Arc<NotifyGate>,
        wake: WakeLanes,
        requester: Arc<str>,
    ) -> Self {
        Ops {
            store,
            gate,
            wake,
            requester,
        }
    }

    pub(crate) fn store(&self) -> &Store {
        &self.store
    }

    fn wake(&self, priority: Option<i16>) {
        (self.wake)(priority);
    }

    /// Inserts one validated job (NOTIFY unless the gate says its lane is backlogged)
    /// and wakes this engine's lanes if it is due now. Returns its id, or the live job's
    /// id for a taken unique key.
    pub(crate) async fn enqueue(&self, mut job: NewJob) -> Result<i64> {
        let span = send_span(&job.queue, &job.kind, 1);
        fill_trace_context(&span, std::slice::from_mut(&mut job));
        let notify = self.gate.needs_notify_for(std::slice::from_ref(&job));
        let id = self
            .store
            .enqueue_one(&job, notify)
            .instrument(span.clone())
            .await?;
        span.record("messaging.message.id", id);
        count_enqueued(std::slice::from_ref(&job), 1);
        if let Some(p) = wake_hint(std::slice::from_ref(&job)) {
            self.wake(Some(p));
        }
        Ok(id)
    }

    /// Inserts validated jobs in one statement with at most one NOTIFY.
    pub(crate) async fn enqueue_many(&self, mut jobs: Vec<NewJob>) -> Result<Vec<i64>> {
        let Some(first) = jobs.first() else {
            return Ok(Vec::new());
        };
        let span = send_span(&first.queue, &first.kind, jobs.len());
        fill_trace_context(&span, &mut jobs);
        let notify = self.gate.needs_notify_for(&jobs);
        let ids = self.store.enqueue(&jobs, notify).instrument(span).await?;
        count_enqueued(&jobs, ids.len());
        if let Some(p) = wake_hint(&jobs) {
            self.wake(Some(p));
        }
        Ok(ids)
    }

    /// Inserts validated jobs with binary COPY and at most one NOTIFY.
    pub(crate) async fn enqueue_copy(&self, jobs: Vec<NewJob>) -> Result<u64> {
        if jobs.is_empty() {
            return Ok(0);
        }
        let hint = wake_hint(&jobs);
        let notify_hint = hint.filter(|_| self.gate.needs_notify_for(&jobs));
        // COPY stores no trace context (the span still shows the batch).
        let span = send_span(&jobs[0].queue, &jobs[0].kind, jobs.len());
        let inserted = self
            .store
            .copy_jobs(&jobs, notify_hint)
            .instrument(span)
            .await?;
        count_enqueued(&jobs, inserted as usize);
        if let Some(p) = hint {
            self.wake(Some(p));
        }
        Ok(inserted)
    }

    /// Inserts one validated job inside the caller's transaction (always notifying: the
    /// job and the NOTIFY exist only if it commits; this process polls for it).
    pub(crate) async fn enqueue_tx<C: tokio_postgres::GenericClient>(
        &self,
        client: &C,
        mut job: NewJob,
    ) -> Result<i64> {
        let span = send_span(&job.queue, &job.kind, 1);
        fill_trace_context(&span, std::slice::from_mut(&mut job));
        let id = self
            .store
            .enqueue_on(client, &job)
            .instrument(span.clone())
            .await?;
        span.record("messaging.message.id", id);
        // Counted when written, whether or not the caller commits.
        count_enqueued(std::slice::from_ref(&job), 1);
        Ok(id)
    }

    /// Enqueues a flow on a pooled connection and wakes the lanes; returns the ids in the
    /// order the jobs were added.
    pub(crate) async fn enqueue_flow(&self, flow: Flow) -> Result<Vec<i64>> {
        let (plan, order) = flow.plan()?;
        let ids = self.store.enqueue_flow_pooled(&plan).await?;
        self.wake(None);
        Ok(in_added_order(ids, &order))
    }

    /// Enqueues a flow inside the caller's transaction: it exists only if that commits.
    pub(crate) async fn enqueue_flow_tx<C: tokio_postgres::GenericClient>(
        &self,
        client: &C,
        flow: Flow,
    ) -> Result<Vec<i64>> {
        let (plan, order) = flow.plan()?;
        let ids = self
            .store
            .timed(self.store.enqueue_flow(client, &plan))
            .await?;
        Ok(in_added_order(ids, &order))
    }

    /// Cancels a job, running or not (see [`CancelOutcome`]).
    pub(crate) async fn cancel(&self, id: i64, reason: Option<&str>) -> Result<CancelOutcome> {
        self.store.cancel(id, reason, &self.requester).await
    }

    /// Puts a failed or cancelled job back with fresh attempts and wakes the lanes;
    /// returns whether it was found.
    pub(crate) async fn retry(&self, id: i64) -> Result<bool> {
        let found = self.store.retry_finished(id).await?;
        if found {
            self.wake(None);
        }
        Ok(found)
    }
}

/// The ids `enqueue_flow()` returned (in plan order) in the order the jobs were added:
/// `order[k]` is the added index of the plan's `k`-th job.
fn in_added_order(ids: Vec<i64>, order: &[usize]) -> Vec<i64> {
    let mut out = vec![0; ids.len()];
    for (k, id) in ids.into_iter().enumerate() {
        out[order[k]] = id;
    }
    out
}

/// Counts `inserted` of `jobs` in `pglane_jobs_enqueued_total`, one counter call per run
/// of jobs sharing a queue and kind (a batch is usually one). When some were skipped
/// (a live unique key), the inserted count goes to the first job's queue and kind.
fn count_enqueued(jobs: &[NewJob], inserted: usize) {
    let Some(first) = jobs.first() else {
        return;
    };
    if inserted != jobs.len() {
        crate::telemetry::metrics::enqueued(&first.queue, &first.kind, inserted as u64);
        return;
    }
    let mut start = 0;
    for i in 1..=jobs.len() {
        let same = i < jobs.len()
            && jobs[i].queue == jobs[start].queue
            && jobs[i].kind == jobs[start].kind;
        if !same {
            let j = &jobs[start];
            crate::telemetry::metrics::enqueued(&j.queue, &j.kind, (i - start) as u64);
            start = i;
        }
    }
}

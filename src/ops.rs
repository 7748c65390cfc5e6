//! One path per operation: enqueue, cancel and retry, shared by the [`Engine`]
//! methods and the supervisor's message handlers, so both do exactly the same steps.
//!
//! [`Engine`]: crate::Engine

use std::sync::Arc;

use crate::cancel::CancelOutcome;
use crate::enqueue::{wake_hint, NewJob};
use crate::error::Result;
use crate::lane::NotifyGate;
use crate::store::Store;

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
    pub(crate) async fn enqueue(&self, job: NewJob) -> Result<i64> {
        let notify = self.gate.needs_notify_for(std::slice::from_ref(&job));
        let id = self.store.enqueue_one(&job, notify).await?;
        if let Some(p) = wake_hint(std::slice::from_ref(&job)) {
            self.wake(Some(p));
        }
        Ok(id)
    }

    /// Inserts validated jobs in one statement with at most one NOTIFY.
    pub(crate) async fn enqueue_many(&self, jobs: Vec<NewJob>) -> Result<Vec<i64>> {
        if jobs.is_empty() {
            return Ok(Vec::new());
        }
        let notify = self.gate.needs_notify_for(&jobs);
        let ids = self.store.enqueue(&jobs, notify).await?;
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
        let inserted = self.store.copy_jobs(&jobs, notify_hint).await?;
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
        job: NewJob,
    ) -> Result<i64> {
        self.store.enqueue_on(client, &job).await
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

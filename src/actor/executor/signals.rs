//! Cancel signals: how a run's handler learns that a user asked to cancel it.
//!
//! Each run gets a `watch` channel when it is launched: the receiver goes into its
//! [`JobContext`](crate::JobContext) (`cancelled()`, `is_cancelled()`), the sender stays
//! here under the run's key until the run is gone.

use std::collections::HashMap;
use std::sync::Mutex;

use tokio::sync::watch;

use crate::dispatch::RunKey;

/// The senders of the runs in progress, by run.
#[derive(Default)]
pub(crate) struct CancelSignals(Mutex<HashMap<RunKey, watch::Sender<bool>>>);

impl CancelSignals {
    fn map(&self) -> std::sync::MutexGuard<'_, HashMap<RunKey, watch::Sender<bool>>> {
        self.0.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// A new run's receiver.
    pub(crate) fn register(&self, key: RunKey) -> watch::Receiver<bool> {
        let (tx, rx) = watch::channel(false);
        self.map().insert(key, tx);
        rx
    }

    /// Tells run `key`'s handler it is cancelled. False if the run is gone.
    pub(crate) fn signal(&self, key: RunKey) -> bool {
        self.map().get(&key).is_some_and(|tx| tx.send(true).is_ok())
    }

    /// Forgets runs that ended.
    pub(crate) fn forget(&self, keys: impl IntoIterator<Item = RunKey>) {
        let mut map = self.map();
        for key in keys {
            map.remove(&key);
        }
    }

    /// Forgets runs whose context is gone (aborted or handed back before they ended
    /// through `forget`).
    pub(crate) fn prune(&self) {
        self.map().retain(|_, tx| tx.receiver_count() > 0);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signal_reaches_only_its_run_and_gone_runs_are_pruned() {
        let s = CancelSignals::default();
        let a = RunKey { job: 1, token: 10 };
        let b = RunKey { job: 1, token: 11 };
        let ra = s.register(a);
        let rb = s.register(b);
        assert!(s.signal(a));
        assert!(*ra.borrow() && !*rb.borrow());
        drop(rb);
        s.prune();
        assert!(!s.signal(b), "its context is gone");
        s.forget([a]);
        assert!(!s.signal(a));
    }
}

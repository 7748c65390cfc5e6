//! What the handler threads are doing: which run each one is polling and since when,
//! and which runs have been polled at all.
//!
//! A handler that blocks its thread (`std::thread::sleep`, a blocking client, a tight
//! loop) does so inside one poll of its future. Every run's future is wrapped so that
//! each poll records, in its thread's slot, the run and the time the poll began, and
//! clears it when the poll returns: a run past its timeout whose thread has been inside
//! one poll for long is stuck, and its thread with it. The first poll of each run is
//! logged too, so leases are renewed only for runs that really started, and a run that
//! never got a thread can be revoked and handed back.

use std::cell::RefCell;
use std::collections::HashSet;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Instant;

use crate::dispatch::RunKey;

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// One handler thread: the run it is polling now, and since when.
#[derive(Debug)]
struct ThreadSlot {
    polling: Mutex<Option<(RunKey, Instant)>>,
}

thread_local! {
    /// This thread's slot, if it is a handler thread.
    static SLOT: RefCell<Option<Arc<ThreadSlot>>> = const { RefCell::new(None) };
}

/// The handler threads of every runtime, and the start log of runs.
#[derive(Debug, Default)]
pub(crate) struct Watch {
    threads: Mutex<Vec<Arc<ThreadSlot>>>,
    starts: Mutex<Starts>,
}

#[derive(Debug, Default)]
struct Starts {
    /// Runs polled for the first time since the supervisor last looked.
    new: Vec<RunKey>,
    /// Runs that must not start: they were handed back before any thread took them up.
    revoked: HashSet<RunKey>,
}

/// Records in this thread's slot that it is polling `key` from now until the guard
/// drops (when the poll returns or unwinds). Does nothing off handler threads.
pub(crate) fn polling(key: RunKey) -> Polling {
    SLOT.with(|s| {
        if let Some(slot) = &*s.borrow() {
            *lock(&slot.polling) = Some((key, Instant::now()));
        }
    });
    Polling
}

/// Clears the thread's slot when a poll returns (see [`polling`]).
pub(crate) struct Polling;

impl Drop for Polling {
    fn drop(&mut self) {
        SLOT.with(|s| {
            if let Some(slot) = &*s.borrow() {
                *lock(&slot.polling) = None;
            }
        });
    }
}

impl Watch {
    /// Registers the calling thread as a handler thread (called when each runtime
    /// thread starts).
    pub(crate) fn register_thread(&self) {
        let slot = Arc::new(ThreadSlot {
            polling: Mutex::new(None),
        });
        lock(&self.threads).push(slot.clone());
        SLOT.with(|s| *s.borrow_mut() = Some(slot));
    }

    /// Forgets the calling thread (called when a runtime thread stops).
    pub(crate) fn unregister_thread(&self) {
        if let Some(slot) = SLOT.with(|s| s.borrow_mut().take()) {
            lock(&self.threads).retain(|t| !Arc::ptr_eq(t, &slot));
        }
    }

    /// A run is polled for the first time: false if it was revoked (it must not run).
    pub(crate) fn first_poll(&self, key: RunKey) -> bool {
        let mut starts = lock(&self.starts);
        if !starts.revoked.is_empty() && starts.revoked.remove(&key) {
            return false;
        }
        starts.new.push(key);
        true
    }

    /// Moves the runs started since the last call into `out` (emptied first).
    pub(crate) fn take_started(&self, out: &mut Vec<RunKey>) {
        out.clear();
        std::mem::swap(out, &mut lock(&self.starts).new);
    }

    /// Makes sure `key`, if not polled yet, never is; false if it has started.
    pub(crate) fn revoke_unstarted(&self, key: RunKey) -> bool {
        let mut starts = lock(&self.starts);
        if starts.new.contains(&key) {
            return false;
        }
        starts.revoked.insert(key);
        true
    }

    /// When the poll run `key` is inside began, if a thread is polling it now.
    pub(crate) fn in_poll_since(&self, key: RunKey) -> Option<Instant> {
        lock(&self.threads).iter().find_map(|t| {
            let now = *lock(&t.polling);
            now.filter(|(k, _)| *k == key).map(|(_, at)| at)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_poll_is_seen_while_it_lasts_and_revoked_runs_never_start() {
        let watch = Watch::default();
        watch.register_thread();
        let key = RunKey { job: 1, token: 2 };
        {
            let _p = polling(key);
            assert!(watch.in_poll_since(key).is_some());
        }
        assert!(watch.in_poll_since(key).is_none());
        assert!(watch.first_poll(key));
        assert!(!watch.revoke_unstarted(key), "it started");
        let other = RunKey { job: 3, token: 2 };
        assert!(watch.revoke_unstarted(other));
        assert!(!watch.first_poll(other), "revoked before its first poll");
        let mut started = Vec::new();
        watch.take_started(&mut started);
        assert_eq!(started, [key]);
        watch.unregister_thread();
        let _p = polling(key);
        assert!(
            watch.in_poll_since(key).is_none(),
            "not a handler thread any more"
        );
    }
}

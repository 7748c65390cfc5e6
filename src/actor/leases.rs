//! Leases: renews the leases of the runs the dispatch core says are due, and reports
//! the ones found lost.
//!
//! A lease is renewed every third of its length, so two renewals can fail before it
//! runs out. A renewal also reports runs a user asked to cancel (the backstop for a
//! missed cancel notification). Only runs a handler thread has started are renewed: a claimed job that
//! never got a thread is handed back, not held hostage under a renewed lease.

use actix::prelude::*;

use std::collections::HashMap;

use crate::actor::supervisor::inbox::{CancelRequested, LeasesLost};
use crate::dispatch::RunKey;
use crate::store::Store;

/// Renew these runs' leases.
#[derive(Message)]
#[rtype(result = "()")]
pub(crate) struct Renew(pub(crate) Vec<RunKey>);

pub(crate) struct Leases {
    store: Store,
    lease_ms: f64,
    lost: Recipient<LeasesLost>,
    cancel: Recipient<CancelRequested>,
}

impl Leases {
    pub(crate) fn new(
        store: Store,
        lease_ms: f64,
        lost: Recipient<LeasesLost>,
        cancel: Recipient<CancelRequested>,
    ) -> Self {
        Leases {
            store,
            lease_ms,
            lost,
            cancel,
        }
    }
}

impl Leases {
    /// Runs whose leases were lost because a user cancelled them while this worker could
    /// not hear it (frozen, cut off): tell their handlers to stop, rather than let them
    /// run on to their timeout with an outcome that will be fenced off anyway.
    fn stop_cancelled(&self, lost: Vec<RunKey>, ctx: &mut Context<Self>) {
        let store = self.store.clone();
        let ids: Vec<i64> = lost.iter().map(|k| k.job).collect();
        let cancel = self.cancel.clone();
        ctx.spawn(
            async move {
                let Ok(cancelled) = store.cancelled_among(&ids).await else {
                    return;
                };
                let keys: Vec<RunKey> = lost
                    .into_iter()
                    .filter(|k| cancelled.contains(&k.job))
                    .collect();
                if !keys.is_empty() {
                    cancel.do_send(CancelRequested(keys));
                }
            }
            .into_actor(self),
        );
    }
}

impl Actor for Leases {
    type Context = Context<Self>;
}

impl Handler<Renew> for Leases {
    type Result = ();

    fn handle(&mut self, msg: Renew, ctx: &mut Context<Self>) {
        let keys = msg.0;
        if keys.is_empty() {
            return;
        }
        let (ids, tokens): (Vec<i64>, Vec<i64>) = keys.iter().map(|k| (k.job, k.token)).unzip();
        let store = self.store.clone();
        let lease_ms = self.lease_ms;
        async move { store.renew(&ids, &tokens, lease_ms).await }
            .into_actor(self)
            .map(move |kept, act, ctx| match kept {
                Ok(kept) => {
                    let owned: HashMap<i64, bool> = kept.into_iter().collect();
                    let (kept, lost): (Vec<RunKey>, Vec<RunKey>) =
                        keys.into_iter().partition(|k| owned.contains_key(&k.job));
                    if !lost.is_empty() {
                        act.lost.do_send(LeasesLost(lost.clone()));
                        act.stop_cancelled(lost, ctx);
                    }
                    // The backstop for a cancel notification this process missed.
                    let cancel: Vec<RunKey> = kept.into_iter().filter(|k| owned[&k.job]).collect();
                    if !cancel.is_empty() {
                        act.cancel.do_send(CancelRequested(cancel));
                    }
                }
                Err(e) => {
                    tracing::warn!(error = %e, "could not renew leases; retrying next interval")
                }
            })
            .spawn(ctx);
    }
}

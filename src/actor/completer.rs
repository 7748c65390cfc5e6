//! The Completer: writes run outcomes in batches, like a group commit.
//!
//! When idle, an outcome is flushed at once (no added latency). While a flush is in
//! flight, outcomes accumulate and go out together when it returns, so under load each
//! statement carries hundreds of outcomes and the database sees one commit for them.
//! A failed flush (database down or read-only) keeps its outcomes and retries with
//! backoff until they are written or their leases are gone, in which case the fence
//! rejects them and the rescuer takes over. An outcome is never dropped silently.

use std::time::Duration;

use actix::prelude::*;
use tokio::sync::oneshot;

use crate::actor::LogLimiter;
use crate::backoff::Backoff;
use crate::store::{OutcomeRow, Store};

/// Most outcomes written by one statement.
const MAX_BATCH: usize = 2000;

/// An outcome to write.
#[derive(Message)]
#[rtype(result = "()")]
pub(crate) struct Outcome(pub(crate) OutcomeRow);

/// Several outcomes to write (a batch of finished runs).
#[derive(Message)]
#[rtype(result = "()")]
pub(crate) struct Outcomes(pub(crate) Vec<OutcomeRow>);

/// Resolves when every outcome received so far is written, or after `timeout`.
/// Answers whether everything was written.
#[derive(Message)]
#[rtype(result = "bool")]
pub(crate) struct Drain {
    pub(crate) timeout: Duration,
}

pub(crate) struct Completer {
    store: Store,
    pending: Vec<OutcomeRow>,
    in_flight: bool,
    failures: u32,
    backoff: Backoff,
    waiters: Vec<oneshot::Sender<()>>,
    log: LogLimiter,
    /// Outcomes written and fenced off since start, for logs and tests.
    written: u64,
    fenced: u64,
}

impl Completer {
    pub(crate) fn new(store: Store, backoff: Backoff) -> Self {
        Completer {
            store,
            pending: Vec::new(),
            in_flight: false,
            failures: 0,
            backoff,
            waiters: Vec::new(),
            log: LogLimiter::new(Duration::from_secs(5)),
            written: 0,
            fenced: 0,
        }
    }

    fn flush(&mut self, ctx: &mut Context<Self>) {
        if self.in_flight {
            return;
        }
        if self.pending.is_empty() {
            for w in self.waiters.drain(..) {
                let _ = w.send(());
            }
            return;
        }
        let take = self.pending.len().min(MAX_BATCH);
        let batch: Vec<OutcomeRow> = self.pending.drain(..take).collect();
        self.in_flight = true;
        let store = self.store.clone();
        async move {
            let result = store.write_outcomes(&batch).await;
            (batch, result)
        }
        .into_actor(self)
        .map(|(batch, result), act, ctx| {
            act.in_flight = false;
            match result {
                Ok(applied) => {
                    act.failures = 0;
                    act.written += applied.len() as u64;
                    let fenced = batch.len() - applied.len();
                    if fenced > 0 {
                        act.fenced += fenced as u64;
                        tracing::debug!(fenced, "outcomes fenced off: those runs had lost their lease");
                    }
                    act.flush(ctx);
                }
                Err(e) => {
                    // Refused without reaching the database (the breaker is open and
                    // probing): checking again is free, so check often and write as soon
                    // as the database is back rather than after a long backoff. Only real
                    // attempts that failed back off.
                    let refused = matches!(e, crate::Error::Unavailable(_));
                    if !refused {
                        act.failures += 1;
                    }
                    if let Some(suppressed) = act.log.allow() {
                        tracing::warn!(error = %e, pending = batch.len() + act.pending.len(), suppressed,
                            "could not write job outcomes; retrying");
                    }
                    // Put the batch back in front, in order, and retry after a backoff.
                    let rest = std::mem::take(&mut act.pending);
                    act.pending = batch;
                    act.pending.extend(rest);
                    act.in_flight = true;
                    let delay = if refused {
                        act.backoff.base
                    } else {
                        act.backoff.delay(act.failures)
                    };
                    ctx.run_later(delay, |act, ctx| {
                        act.in_flight = false;
                        act.flush(ctx);
                    });
                }
            }
        })
        .spawn(ctx);
    }
}

impl Actor for Completer {
    type Context = Context<Self>;
}

impl Handler<Outcome> for Completer {
    type Result = ();

    fn handle(&mut self, msg: Outcome, ctx: &mut Context<Self>) {
        self.pending.push(msg.0);
        self.flush(ctx);
    }
}

impl Handler<Outcomes> for Completer {
    type Result = ();

    fn handle(&mut self, msg: Outcomes, ctx: &mut Context<Self>) {
        self.pending.extend(msg.0);
        self.flush(ctx);
    }
}

impl Handler<Drain> for Completer {
    type Result = ResponseFuture<bool>;

    fn handle(&mut self, msg: Drain, ctx: &mut Context<Self>) -> Self::Result {
        let (tx, rx) = oneshot::channel();
        self.waiters.push(tx);
        self.flush(ctx);
        Box::pin(async move { matches!(tokio::time::timeout(msg.timeout, rx).await, Ok(Ok(()))) })
    }
}

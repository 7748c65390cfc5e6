//! The Completer: writes run outcomes (hand-backs included) in batches, like a group
//! commit. Every outcome the engine writes goes through it.
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
use crate::dispatch::StuckRun;
use crate::outcome::decide_stuck;
use crate::store::{OutcomeRow, Store};
use crate::telemetry::metrics::{Outcome, OutcomeMetrics, RunLabels};
use crate::telemetry::rate::RateLimit;

/// The ids of `batch` not in `applied` (at most 10, for a log line).
fn fenced_ids(batch: &[OutcomeRow], applied: &[i64]) -> Vec<i64> {
    let applied: std::collections::HashSet<i64> = applied.iter().copied().collect();
    batch
        .iter()
        .map(|r| r.id)
        .filter(|id| !applied.contains(id))
        .take(10)
        .collect()
}

/// Most outcomes written by one statement.
const MAX_BATCH: usize = 2000;

/// Outcomes to write (a batch of finished runs, or hand-backs).
#[derive(Message)]
#[rtype(result = "()")]
pub(crate) struct Outcomes(pub(crate) Vec<OutcomeRow>);

/// Hand-backs that something waits for (a rescued job starts only once its neighbours
/// are back in the queue). Answers `true` once they are written, `false` if the first
/// attempt failed (they are still retried).
#[derive(Message)]
#[rtype(result = "bool")]
pub(crate) struct HandBack(pub(crate) Vec<OutcomeRow>);

/// A run found blocking its handler thread: write its outcome, which depends on how
/// often the job got stuck before (read from its recorded errors).
#[derive(Message)]
#[rtype(result = "()")]
pub(crate) struct WriteStuck(pub(crate) StuckRun);

/// Resolves when every outcome received so far is written, or after `timeout`.
/// Answers whether everything was written.
#[derive(Message)]
#[rtype(result = "bool")]
pub(crate) struct Drain {
    pub(crate) timeout: Duration,
}

/// How stuck runs are judged.
#[derive(Debug, Clone, Copy)]
pub(crate) struct StuckPolicy {
    /// Stuck runs after which a job is failed (`max_rescues`).
    pub(crate) limit: i32,
    pub(crate) retry_backoff: Backoff,
}

pub(crate) struct Completer {
    store: Store,
    pending: Vec<OutcomeRow>,
    in_flight: bool,
    failures: u32,
    backoff: Backoff,
    stuck: StuckPolicy,
    waiters: Vec<oneshot::Sender<()>>,
    /// Rows received and rows written so far, in order: a hand-back waiter is answered
    /// once `written` passes the count at which its rows were received.
    received: u64,
    written: u64,
    acks: Vec<(u64, oneshot::Sender<bool>)>,
    /// Stuck runs whose outcome is being decided (a drain waits for them too).
    deciding: usize,
    log: LogLimiter,
    /// Copy completed jobs to `jobs_finished` (false: a zero retention deletes them).
    keep_completed: bool,
    /// Fenced-off outcomes are logged at `warn`, rate limited.
    fenced_log: RateLimit,
    metrics: OutcomeMetrics,
}

impl Completer {
    /// A completer writing through `store`; completed jobs are kept in `jobs_finished`
    /// only if `keep_completed` (a non-zero `completed_retention`).
    pub(crate) fn new(
        store: Store,
        backoff: Backoff,
        stuck: StuckPolicy,
        metrics: OutcomeMetrics,
        keep_completed: bool,
    ) -> Self {
        Completer {
            store,
            keep_completed,
            pending: Vec::new(),
            in_flight: false,
            failures: 0,
            backoff,
            stuck,
            waiters: Vec::new(),
            received: 0,
            written: 0,
            acks: Vec::new(),
            deciding: 0,
            log: LogLimiter::new(Duration::from_secs(5)),
            fenced_log: RateLimit::new(10, 1.0),
            metrics,
        }
    }

    fn add(&mut self, rows: impl IntoIterator<Item = OutcomeRow>, ctx: &mut Context<Self>) {
        let before = self.pending.len();
        self.pending.extend(rows);
        self.received += (self.pending.len() - before) as u64;
        self.flush(ctx);
    }

    /// Counts a written batch: each run's outcome, or `fenced` for those not applied.
    fn count(&mut self, batch: &[OutcomeRow], applied: &[i64], took: Duration) {
        self.metrics.batch(batch.len(), took);
        let all_applied = applied.len() == batch.len();
        let applied: std::collections::HashSet<i64> = if all_applied {
            Default::default()
        } else {
            applied.iter().copied().collect()
        };
        for row in batch {
            let Some(labels) = row.labels else { continue };
            let outcome = if all_applied || applied.contains(&row.id) {
                Outcome::of(&row.action)
            } else {
                Some(Outcome::Fenced)
            };
            if let Some(outcome) = outcome {
                self.metrics.finished(labels, outcome);
            }
        }
    }

    /// Answers the hand-back waiters whose rows are all within the first `upto` rows.
    fn answer_acks(&mut self, upto: u64, written: bool) {
        let mut i = 0;
        while i < self.acks.len() {
            if self.acks[i].0 <= upto {
                let (_, tx) = self.acks.swap_remove(i);
                let _ = tx.send(written);
            } else {
                i += 1;
            }
        }
    }

    fn flush(&mut self, ctx: &mut Context<Self>) {
        if self.in_flight {
            return;
        }
        if self.pending.is_empty() {
            if self.deciding > 0 {
                return;
            }
            for w in self.waiters.drain(..) {
                let _ = w.send(());
            }
            return;
        }
        let take = self.pending.len().min(MAX_BATCH);
        let batch: Vec<OutcomeRow> = self.pending.drain(..take).collect();
        self.in_flight = true;
        let store = self.store.clone();
        let keep_completed = self.keep_completed;
        async move {
            let began = std::time::Instant::now();
            let result = store.write_outcomes(&batch, keep_completed).await;
            (batch, result, began.elapsed())
        }
        .into_actor(self)
        .map(|(batch, result, took), act, ctx| {
            act.in_flight = false;
            match result {
                Ok(applied) => {
                    act.count(&batch, &applied, took);
                    act.failures = 0;
                    act.written += batch.len() as u64;
                    act.answer_acks(act.written, true);
                    let fenced = batch.len() - applied.len();
                    if fenced > 0 {
                        if let Some(suppressed) = act.fenced_log.allow(std::time::Instant::now()) {
                            let fenced_ids = fenced_ids(&batch, &applied);
                            tracing::warn!(
                                fenced,
                                jobs = ?fenced_ids,
                                suppressed,
                                "outcomes fenced off: those runs had lost their lease (rescued \
                                 or cancelled meanwhile); the newer attempt's outcome stands"
                            );
                        }
                    }
                    act.flush(ctx);
                }
                Err(e) => {
                    act.answer_acks(act.written + batch.len() as u64, false);
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

impl Handler<Outcomes> for Completer {
    type Result = ();

    fn handle(&mut self, msg: Outcomes, ctx: &mut Context<Self>) {
        self.add(msg.0, ctx);
    }
}

impl Handler<HandBack> for Completer {
    type Result = ResponseFuture<bool>;

    fn handle(&mut self, msg: HandBack, ctx: &mut Context<Self>) -> Self::Result {
        let (tx, rx) = oneshot::channel();
        self.acks.push((self.received + msg.0.len() as u64, tx));
        self.add(msg.0, ctx);
        Box::pin(async move { rx.await.unwrap_or(false) })
    }
}

impl Handler<WriteStuck> for Completer {
    type Result = ();

    fn handle(&mut self, msg: WriteStuck, ctx: &mut Context<Self>) {
        let run = msg.0;
        let store = self.store.clone();
        let policy = self.stuck;
        self.deciding += 1;
        // Counted in the database, so the limit holds across processes and restarts.
        async move { store.stuck_runs(run.key.job).await }
            .into_actor(self)
            .map(move |before, act, ctx| {
                act.deciding -= 1;
                let action = decide_stuck(
                    before.unwrap_or(0),
                    policy.limit,
                    run.attempt,
                    run.max_attempts,
                    run.timeout,
                    run.blocked_for,
                    &policy.retry_backoff,
                );
                let row = OutcomeRow {
                    id: run.key.job,
                    token: run.key.token,
                    action,
                    labels: Some(RunLabels {
                        lane: run.lane as u16,
                        kind: run.kind,
                    }),
                };
                act.add([row], ctx);
            })
            .spawn(ctx);
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

//! The executor: runs one job on a handler runtime, with panics caught, its polls
//! watched, and how it ended reported back.
//!
//! `pool` holds the runtimes (and replaces one whose thread got stuck), `watch` records
//! what each handler thread is polling. The supervisor enforces timeouts from its side.

mod pool;
mod signals;
mod watch;

use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::task::Poll;

use actix::Recipient;
use futures_util::FutureExt;
use tracing::Instrument;

use crate::actor::supervisor::inbox::RunsEnded;
use crate::dispatch::RunKey;
use crate::job::{JobContext, Runner};
use crate::outcome::RunResult;
use crate::telemetry::spans::{process_span, RunSpan};

pub(crate) use pool::{HandlerPool, Target};
pub(crate) use signals::CancelSignals;
pub(crate) use watch::Watch;

/// Runs that ended, waiting for the supervisor. Handlers finish on several threads at
/// tens of thousands per second; instead of one mailbox message per run, each run is
/// pushed here and only the push that finds the queue empty sends a [`RunsEnded`]
/// wake-up. The supervisor then settles the whole batch in one visit: one outcome
/// message to the completer, one dispatch per lane, and a short mailbox for the hints
/// that must not wait (an urgent job's NOTIFY).
///
/// Cloned into every run: an `Arc`, so a clone allocates nothing.
#[derive(Clone)]
pub(crate) struct EndedRuns(Arc<Queue>);

struct Queue {
    runs: Mutex<Vec<(RunKey, RunResult)>>,
    wake: Recipient<RunsEnded>,
}

impl EndedRuns {
    pub(crate) fn new(wake: Recipient<RunsEnded>) -> Self {
        EndedRuns(Arc::new(Queue {
            runs: Mutex::new(Vec::new()),
            wake,
        }))
    }

    fn push(&self, key: RunKey, result: RunResult) {
        let first = {
            let mut runs = self.0.runs.lock().unwrap_or_else(|p| p.into_inner());
            runs.push((key, result));
            runs.len() == 1
        };
        // Exactly one wake-up per batch: whoever finds the queue empty sends it, and the
        // supervisor empties the queue when it handles that wake-up.
        if first {
            self.0.wake.do_send(RunsEnded);
        }
    }

    /// Every run that ended since the last call, swapped into `out` (emptied first), so
    /// both vectors keep their capacity.
    pub(crate) fn take(&self, out: &mut Vec<(RunKey, RunResult)>) {
        out.clear();
        std::mem::swap(
            out,
            &mut *self.0.runs.lock().unwrap_or_else(|p| p.into_inner()),
        );
    }
}

/// Reports a run whose future is dropped before it finished (aborted, or its runtime
/// shut down), and counts the runtime's live runs.
struct EndGuard {
    key: RunKey,
    ended: EndedRuns,
    target: Target,
    reported: bool,
}

impl Drop for EndGuard {
    fn drop(&mut self) {
        if !self.reported {
            self.ended.push(self.key, RunResult::Abandoned);
        }
        self.target.live.fetch_sub(1, Ordering::AcqRel);
    }
}

/// Starts run `key` on `target` and returns the handle the supervisor aborts it with.
pub(crate) fn spawn(
    target: &Target,
    watch: &Arc<Watch>,
    runner: Arc<dyn Runner>,
    args: Vec<u8>,
    ctx: JobContext,
    key: RunKey,
    ended: &EndedRuns,
) -> tokio::task::AbortHandle {
    let span = process_span(RunSpan {
        queue: &ctx.queue,
        id: ctx.id,
        kind: ctx.kind,
        attempt: ctx.attempt,
        priority: ctx.priority,
        lane: &ctx.lane,
        link: ctx.traceparent.as_deref(),
    });
    target.live.fetch_add(1, Ordering::AcqRel);
    let mut guard = EndGuard {
        key,
        ended: ended.clone(),
        target: target.clone(),
        reported: false,
    };
    let watch = watch.clone();
    let run = async move {
        // The handler is called inside the guarded future, so a panic while decoding or
        // before its first await is caught too.
        let body = AssertUnwindSafe(async { runner.run(&args, ctx).await }).catch_unwind();
        let mut body = std::pin::pin!(body);
        let mut first = true;
        let result = std::future::poll_fn(|cx| {
            if std::mem::take(&mut first) && !watch.first_poll(key) {
                // Revoked before any thread took it up: it was handed back already.
                return Poll::Ready(None);
            }
            let _polling = watch::polling(key);
            body.as_mut().poll(cx).map(Some)
        })
        .await;
        guard.reported = true;
        let result = match result {
            None => return,
            Some(Ok(r)) => crate::job::run_result(r),
            Some(Err(payload)) => RunResult::panicked(&*payload),
        };
        guard.ended.push(key, result);
    };
    target.handle.spawn(run.instrument(span)).abort_handle()
}

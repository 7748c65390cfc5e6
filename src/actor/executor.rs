//! Runs one job: on the handler runtime, with panics caught, reporting how it ended.
//!
//! Handlers run on their own multi-threaded tokio runtime, not on the actix thread, so
//! a handler that blocks or never yields cannot stall the supervisor, the claimers or
//! the other lanes. The supervisor enforces timeouts from its side.

use std::panic::AssertUnwindSafe;
use std::sync::{Arc, Mutex};

use actix::Recipient;
use futures_util::FutureExt;
use tracing::Instrument;

use crate::job::{JobContext, Runner};
use crate::outcome::RunResult;

/// Identifies one run: job id and the lease token it was claimed under.
pub(crate) type RunKey = (i64, i64);

/// Runs that ended, gathered for the supervisor. Handlers finish on several threads at
/// tens of thousands per second; instead of one mailbox message per run, each run is
/// pushed here and only the push that finds the queue empty sends a [`RunsFinished`]
/// wake-up. The supervisor then settles the whole batch in one visit: one outcome
/// message to the completer, one dispatch per lane, and a short mailbox for the hints
/// that must not wait (an urgent job's NOTIFY).
#[derive(Clone)]
pub(crate) struct Finished {
    runs: Arc<Mutex<Vec<(RunKey, RunResult)>>>,
    wake: Recipient<RunsFinished>,
}

/// Some runs ended; take them with [`Finished::take`].
#[derive(actix::Message)]
#[rtype(result = "()")]
pub(crate) struct RunsFinished;

impl Finished {
    pub(crate) fn new(wake: Recipient<RunsFinished>) -> Self {
        Finished {
            runs: Arc::new(Mutex::new(Vec::new())),
            wake,
        }
    }

    fn push(&self, key: RunKey, result: RunResult) {
        let first = {
            let mut runs = self.runs.lock().unwrap_or_else(|p| p.into_inner());
            runs.push((key, result));
            runs.len() == 1
        };
        // Exactly one wake-up per batch: whoever finds the queue empty sends it, and the
        // supervisor empties the queue when it handles that wake-up.
        if first {
            self.wake.do_send(RunsFinished);
        }
    }

    /// Every run that ended since the last call.
    pub(crate) fn take(&self) -> Vec<(RunKey, RunResult)> {
        std::mem::take(&mut *self.runs.lock().unwrap_or_else(|p| p.into_inner()))
    }
}

/// The runtime handlers run on. Dropping it detaches its threads without blocking
/// (a stuck handler must not hang the application's shutdown).
pub(crate) struct HandlerRuntime(Option<tokio::runtime::Runtime>);

impl HandlerRuntime {
    pub(crate) fn new(threads: usize) -> std::io::Result<Arc<Self>> {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(threads)
            .thread_name("pglane-handler")
            .enable_all()
            .build()?;
        Ok(Arc::new(HandlerRuntime(Some(rt))))
    }

    fn handle(&self) -> &tokio::runtime::Handle {
        // INVARIANT: the runtime is only taken out in Drop.
        self.0
            .as_ref()
            .expect("handler runtime present until drop")
            .handle()
    }
}

impl Drop for HandlerRuntime {
    fn drop(&mut self) {
        if let Some(rt) = self.0.take() {
            rt.shutdown_background();
        }
    }
}

/// Starts a run and returns the handle the supervisor uses to abort it on timeout.
pub(crate) fn spawn(
    rt: &HandlerRuntime,
    runner: Arc<dyn Runner>,
    args: Vec<u8>,
    ctx: JobContext,
    key: RunKey,
    finished: Finished,
) -> tokio::task::AbortHandle {
    let span = tracing::info_span!(
        "job",
        id = ctx.id,
        kind = ctx.kind,
        lane = &*ctx.lane,
        attempt = ctx.attempt,
    );
    let run = async move {
        // The handler is called inside the guarded future, so a panic while decoding or
        // before its first await is caught too.
        let result = AssertUnwindSafe(async { runner.run(&args, ctx).await })
            .catch_unwind()
            .await;
        let result = match result {
            Ok(r) => RunResult::from_handler(r),
            Err(payload) => RunResult::panicked(&*payload),
        };
        finished.push(key, result);
    };
    rt.handle().spawn(run.instrument(span)).abort_handle()
}

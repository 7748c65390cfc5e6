//! Runs one job: on the handler runtime, with panics caught, reporting how it ended.
//!
//! Handlers run on their own multi-threaded tokio runtime, not on the actix thread, so
//! a handler that blocks or never yields cannot stall the supervisor, the claimers or
//! the other lanes. The supervisor enforces timeouts from its side.

use std::panic::AssertUnwindSafe;
use std::sync::Arc;

use actix::Recipient;
use futures_util::FutureExt;
use tracing::Instrument;

use crate::job::{JobContext, Runner};
use crate::outcome::RunResult;

/// Identifies one run: job id and the lease token it was claimed under.
pub(crate) type RunKey = (i64, i64);

/// A run ended (or panicked). Sent from the handler runtime to the supervisor.
#[derive(actix::Message)]
#[rtype(result = "()")]
pub(crate) struct JobFinished {
    pub(crate) key: RunKey,
    pub(crate) result: RunResult,
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
    reply: Recipient<JobFinished>,
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
        reply.do_send(JobFinished { key, result });
    };
    rt.handle().spawn(run.instrument(span)).abort_handle()
}

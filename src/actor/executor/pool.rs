//! The handler runtimes: where runs go, and how a stuck thread is replaced.
//!
//! Handlers run on a multi-threaded tokio runtime of their own (`handler_threads`
//! threads), not on the actix thread, so a handler that blocks or never yields cannot
//! stall the supervisor, the claimers or the other lanes. A thread blocked in a handler
//! cannot be freed: when the dispatch core finds one stuck (and the cap allows), the pool
//! starts a fresh runtime for new runs and *retires* the old one, which keeps running its
//! runs until they end. A retired runtime whose only runs left are stuck ones is shut
//! down in the background: its healthy threads exit, and each stuck thread exits when
//! its blocking call returns (or is leaked, by design, if it never does; it blocks
//! neither engine shutdown nor process exit). Tasks a handler spawned itself on a retired
//! runtime end with it.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use tokio::runtime::{Handle, Runtime};

use super::watch::Watch;

/// Where new runs are launched: the current runtime, and its count of live runs.
#[derive(Clone)]
pub(crate) struct Target {
    pub(crate) generation: u32,
    pub(crate) handle: Handle,
    /// Runs launched on this runtime whose futures still exist.
    pub(crate) live: Arc<AtomicUsize>,
}

struct Entry {
    generation: u32,
    runtime: Option<Runtime>,
    live: Arc<AtomicUsize>,
}

/// The handler runtimes of one engine. Dropping it detaches every thread without
/// blocking (a stuck handler must not hang the application's shutdown).
pub(crate) struct HandlerPool {
    threads: usize,
    watch: Arc<Watch>,
    runtimes: Mutex<Runtimes>,
}

struct Runtimes {
    current: Entry,
    retired: Vec<Entry>,
}

impl HandlerPool {
    pub(crate) fn new(threads: usize) -> std::io::Result<Arc<Self>> {
        let watch = Arc::new(Watch::default());
        let current = start(0, threads, &watch)?;
        Ok(Arc::new(HandlerPool {
            threads,
            watch,
            runtimes: Mutex::new(Runtimes {
                current,
                retired: Vec::new(),
            }),
        }))
    }

    fn runtimes(&self) -> MutexGuard<'_, Runtimes> {
        self.runtimes.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub(crate) fn watch(&self) -> &Arc<Watch> {
        &self.watch
    }

    /// Where to launch runs now.
    pub(crate) fn target(&self) -> Target {
        let r = self.runtimes();
        Target {
            generation: r.current.generation,
            // INVARIANT: a runtime is only taken out of its entry when it is shut down,
            // and the current one never is.
            handle: r
                .current
                .runtime
                .as_ref()
                .expect("current runtime")
                .handle()
                .clone(),
            live: r.current.live.clone(),
        }
    }

    /// Starts a fresh runtime for new runs and retires the current one. On failure (no
    /// thread could be started) the current runtime stays.
    pub(crate) fn replace(&self) -> std::io::Result<Target> {
        let mut r = self.runtimes();
        let fresh = start(r.current.generation + 1, self.threads, &self.watch)?;
        let old = std::mem::replace(&mut r.current, fresh);
        r.retired.push(old);
        drop(r);
        Ok(self.target())
    }

    /// Shuts down retired runtimes that have nothing left but stuck runs
    /// (`stuck(generation)` says how many each has). Returns how many were shut down.
    pub(crate) fn shut_down_drained(&self, stuck: impl Fn(u32) -> usize) -> usize {
        let mut r = self.runtimes();
        let mut n = 0;
        for e in &mut r.retired {
            if e.runtime.is_some() && e.live.load(Ordering::Acquire) <= stuck(e.generation) {
                if let Some(rt) = e.runtime.take() {
                    rt.shutdown_background();
                    n += 1;
                }
            }
        }
        r.retired.retain(|e| e.runtime.is_some());
        n
    }

    /// Threads per runtime.
    pub(crate) fn threads(&self) -> usize {
        self.threads
    }
}

impl Drop for HandlerPool {
    fn drop(&mut self) {
        let r = self.runtimes.get_mut().unwrap_or_else(|p| p.into_inner());
        for e in std::iter::once(&mut r.current).chain(r.retired.iter_mut()) {
            if let Some(rt) = e.runtime.take() {
                rt.shutdown_background();
            }
        }
    }
}

fn start(generation: u32, threads: usize, watch: &Arc<Watch>) -> std::io::Result<Entry> {
    let (on_start, on_stop) = (watch.clone(), watch.clone());
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(threads)
        .thread_name("pglane-handler")
        .on_thread_start(move || on_start.register_thread())
        .on_thread_stop(move || on_stop.unregister_thread())
        .enable_all()
        .build()?;
    Ok(Entry {
        generation,
        runtime: Some(runtime),
        live: Arc::new(AtomicUsize::new(0)),
    })
}

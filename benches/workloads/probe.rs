//! The benchmarks' one job kind, and the recorder its handlers report to.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use pglane::{Job, JobContext, JobError};
use serde::{Deserialize, Serialize};

use crate::common::BoxResult;

/// `seq` of the background (low-priority, unmeasured) jobs.
pub(crate) const LOW: u32 = u32::MAX;

/// The one job kind of the benchmarks: records when it started, then sleeps if asked.
#[derive(Serialize, Deserialize)]
pub(crate) struct Probe {
    pub(crate) seq: u32,
    #[serde(default, skip_serializing_if = "is_zero")]
    pub(crate) sleep_us: u32,
}

fn is_zero(v: &u32) -> bool {
    *v == 0
}

impl Job for Probe {
    const KIND: &'static str = "bench_probe";
    async fn run(self, ctx: JobContext) -> Result<(), JobError> {
        let Some(rec) = ctx.data::<Arc<Recorder>>() else {
            return Err(JobError::cancel("no recorder registered"));
        };
        rec.start(self.seq, ctx.id());
        if self.sleep_us > 0 {
            // tokio's timer has millisecond ticks, so `tokio::time::sleep(1 ms)` lasts
            // 1 to 2 ms; a blocking-pool thread's nanosleep lands within tens of µs.
            let d = Duration::from_micros(u64::from(self.sleep_us));
            let t = Instant::now();
            tokio::task::spawn_blocking(move || std::thread::sleep(d))
                .await
                .map_err(JobError::retry)?;
            rec.slept(t.elapsed());
        }
        rec.end(self.seq);
        Ok(())
    }
}

/// What the handlers saw, shared with the workload through `JobContext::data`.
pub(crate) struct Recorder {
    base: Instant,
    /// Per measured job: nanoseconds since `base` at handler start, plus one (0 = never).
    started: Vec<AtomicU64>,
    /// Per measured job: low jobs done when it started.
    low_done_at_start: Vec<AtomicU64>,
    pub(crate) executions: AtomicU64,
    pub(crate) low_done: AtomicU64,
    /// Nanoseconds since `base` when the latest low job ended.
    last_low_end: AtomicU64,
    /// Nanoseconds since `base` when the first job started, plus one (0 = none yet).
    first_start: AtomicU64,
    slept_ns: AtomicU64,
    slept_n: AtomicU64,
    ids: Option<Mutex<Vec<i64>>>,
}

impl Recorder {
    pub(crate) fn new(measured: usize, keep_ids: bool) -> Arc<Self> {
        Arc::new(Recorder {
            base: Instant::now(),
            started: (0..measured).map(|_| AtomicU64::new(0)).collect(),
            low_done_at_start: (0..measured).map(|_| AtomicU64::new(0)).collect(),
            executions: AtomicU64::new(0),
            low_done: AtomicU64::new(0),
            last_low_end: AtomicU64::new(0),
            first_start: AtomicU64::new(0),
            slept_ns: AtomicU64::new(0),
            slept_n: AtomicU64::new(0),
            ids: keep_ids.then(|| Mutex::new(Vec::new())),
        })
    }

    fn nanos(&self, t: Instant) -> u64 {
        t.saturating_duration_since(self.base).as_nanos() as u64
    }

    fn start(&self, seq: u32, id: i64) {
        if self.first_start.load(Ordering::Relaxed) == 0 {
            let now = self.nanos(Instant::now()) + 1;
            let _ = self
                .first_start
                .compare_exchange(0, now, Ordering::AcqRel, Ordering::Acquire);
        }
        if let Some(slot) = self.started.get(seq as usize) {
            slot.store(self.nanos(Instant::now()) + 1, Ordering::Release);
            self.low_done_at_start[seq as usize]
                .store(self.low_done.load(Ordering::Acquire), Ordering::Release);
        }
        if let Some(ids) = &self.ids {
            ids.lock().unwrap_or_else(|p| p.into_inner()).push(id);
        }
    }

    fn end(&self, seq: u32) {
        self.executions.fetch_add(1, Ordering::AcqRel);
        if seq == LOW {
            self.low_done.fetch_add(1, Ordering::AcqRel);
            self.last_low_end
                .fetch_max(self.nanos(Instant::now()), Ordering::AcqRel);
        }
    }

    fn slept(&self, d: Duration) {
        self.slept_ns
            .fetch_add(d.as_nanos() as u64, Ordering::Relaxed);
        self.slept_n.fetch_add(1, Ordering::Relaxed);
    }

    /// When measured job `seq` started, if it did.
    pub(crate) fn started_at(&self, seq: usize) -> Option<Instant> {
        match self.started[seq].load(Ordering::Acquire) {
            0 => None,
            n => Some(self.base + Duration::from_nanos(n - 1)),
        }
    }

    /// Low jobs done when measured job `seq` started.
    pub(crate) fn low_done_at_start(&self, seq: usize) -> u64 {
        self.low_done_at_start[seq].load(Ordering::Acquire)
    }

    /// When the first job started, if one did.
    pub(crate) fn first_start(&self) -> Option<Instant> {
        match self.first_start.load(Ordering::Acquire) {
            0 => None,
            n => Some(self.base + Duration::from_nanos(n - 1)),
        }
    }

    pub(crate) fn last_low_end(&self) -> Instant {
        self.base + Duration::from_nanos(self.last_low_end.load(Ordering::Acquire))
    }

    /// Mean measured sleep of the sleeping handlers, in ms.
    pub(crate) fn mean_sleep_ms(&self) -> f64 {
        let n = self.slept_n.load(Ordering::Relaxed).max(1);
        self.slept_ns.load(Ordering::Relaxed) as f64 / n as f64 / 1e6
    }

    pub(crate) fn take_ids(&self) -> Vec<i64> {
        self.ids.as_ref().map_or_else(Vec::new, |m| {
            std::mem::take(&mut *m.lock().unwrap_or_else(|p| p.into_inner()))
        })
    }

    /// Waits until `n` measured jobs have started, or `timeout`.
    pub(crate) async fn wait_started(&self, n: usize, timeout: Duration) -> BoxResult<()> {
        let deadline = Instant::now() + timeout;
        while (0..n).any(|i| self.started_at(i).is_none()) {
            if Instant::now() > deadline {
                return Err("measured jobs did not all start in time".into());
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        Ok(())
    }
}

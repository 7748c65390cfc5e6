//! A test rig for the core: plays the actor, with fake jobs, a recording launcher, a
//! scripted probe of the handler threads, and a clock moved by hand.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::*;
use crate::lane::{Lane, NotifyGate};
use crate::outcome::{Action, RunResult};

/// A claimed job.
#[derive(Debug, Clone)]
pub(super) struct Job {
    pub(super) id: i64,
    pub(super) rescued: bool,
    pub(super) priority: i16,
}

impl Claimed for Job {
    fn id(&self) -> i64 {
        self.id
    }
    fn rescued(&self) -> bool {
        self.rescued
    }
}

/// A job started by the core.
#[derive(Debug, Clone)]
pub(super) struct Launched {
    pub(super) lane: LaneId,
    pub(super) key: RunKey,
    pub(super) job: Job,
}

struct Launch<'a> {
    waited: Duration,
    log: &'a mut Vec<Launched>,
    lanes: &'a [Arc<LaneSpec>],
    timeout: Duration,
    unknown: &'a HashSet<i64>,
}

impl Launcher<Job> for Launch<'_> {
    type Handle = RunKey;
    fn launch(&mut self, lane: &LaneSpec, key: RunKey, job: Job) -> Option<(RunKey, RunFacts)> {
        if self.unknown.contains(&job.id) {
            return None;
        }
        let lane = self
            .lanes
            .iter()
            .position(|l| **l == *lane)
            .expect("known lane");
        self.log.push(Launched { lane, key, job });
        let facts = RunFacts {
            kind: "test",
            attempt: 1,
            max_attempts: 3,
            timeout: self.timeout,
            waited: self.waited,
        };
        Some((key, facts))
    }
}

/// What the handler threads do, as the test says.
#[derive(Default)]
pub(super) struct Probe {
    pub(super) in_poll: HashMap<RunKey, Instant>,
    pub(super) started: HashSet<RunKey>,
}

impl RunProbe for Probe {
    fn in_poll_since(&self, key: RunKey) -> Option<Instant> {
        self.in_poll.get(&key).copied()
    }
    fn revoke_unstarted(&mut self, key: RunKey) -> bool {
        !self.started.contains(&key)
    }
}

pub(super) struct Rig {
    pub(super) core: Dispatcher<Job, RunKey>,
    pub(super) specs: Vec<Arc<LaneSpec>>,
    pub(super) gate: Arc<NotifyGate>,
    pub(super) now: Instant,
    pub(super) probe: Probe,
    pub(super) unknown: HashSet<i64>,
    pub(super) timeout: Duration,
    // Everything the core asked for, in order.
    pub(super) claims: Vec<ClaimOrder>,
    pub(super) launched: Vec<Launched>,
    pub(super) outcomes: Vec<(RunKey, Action)>,
    pub(super) before_start: Vec<RunKey>,
    pub(super) aborts: Vec<RunKey>,
    pub(super) stuck: Vec<StuckRun>,
    pub(super) renewals: Vec<RunKey>,
    pub(super) replies: Vec<WaiterId>,
    pub(super) threads: Vec<ThreadChange>,
    /// The wait every launched job reports, and the round trip of every claim answered
    /// with jobs (5 ms unless a test sets it).
    pub(super) wait: Duration,
    fx: Effects<RunKey>,
}

pub(super) const TIMEOUT: Duration = Duration::from_secs(10);

pub(super) fn config(threads: usize, max_stuck_threads: usize) -> CoreConfig {
    CoreConfig {
        retry_backoff: crate::backoff::Backoff {
            base: Duration::from_secs(1),
            max: Duration::from_secs(1),
            jitter: 0.0,
        },
        renew_every: Duration::from_secs(10),
        start_within: Duration::from_secs(10),
        stuck_poll: Duration::from_millis(100),
        cancel_grace: Duration::from_secs(2),
        threads,
        max_stuck_threads,
    }
}

impl Rig {
    pub(super) fn new(lanes: Vec<Lane>) -> Rig {
        Rig::with(lanes, config(2, 4))
    }

    pub(super) fn with(lanes: Vec<Lane>, config: CoreConfig) -> Rig {
        let split: Vec<(Arc<LaneSpec>, u32)> = lanes.into_iter().map(Lane::split).collect();
        let specs: Vec<Arc<LaneSpec>> = split.iter().map(|(s, _)| s.clone()).collect();
        let gate = Arc::new(NotifyGate::new(&specs, "default", true));
        let mut next = 0;
        let tokens = Box::new(move || {
            next += 1;
            next
        });
        Rig {
            core: Dispatcher::new(split, gate.clone(), tokens, true, config),
            specs,
            gate,
            now: Instant::now(),
            probe: Probe::default(),
            unknown: HashSet::new(),
            timeout: TIMEOUT,
            claims: Vec::new(),
            launched: Vec::new(),
            outcomes: Vec::new(),
            before_start: Vec::new(),
            aborts: Vec::new(),
            stuck: Vec::new(),
            renewals: Vec::new(),
            replies: Vec::new(),
            threads: Vec::new(),
            wait: Duration::from_millis(5),
            fx: Effects::default(),
        }
    }

    /// Moves what the last call decided into the logs.
    fn collect(&mut self) {
        let fx = &mut self.fx;
        self.claims.append(&mut fx.claims);
        self.outcomes.append(&mut fx.outcomes);
        self.before_start.append(&mut fx.hand_backs_before_start);
        self.aborts.append(&mut fx.aborts);
        self.stuck.append(&mut fx.stuck);
        self.renewals.append(&mut fx.renewals);
        self.replies.append(&mut fx.replies);
        self.threads.extend(fx.threads.take());
    }

    pub(super) fn wake(&mut self, p: Option<i16>) {
        self.core.wake(p, &mut self.fx);
        self.collect();
    }

    /// The oldest claim not yet answered, for lane `lane`.
    pub(super) fn take_claim(&mut self, lane: LaneId) -> ClaimOrder {
        let i = self
            .claims
            .iter()
            .position(|c| c.lane == lane)
            .unwrap_or_else(|| panic!("no claim for lane {lane}: {:?}", self.claims));
        self.claims.remove(i)
    }

    pub(super) fn answer(&mut self, order: ClaimOrder, jobs: Result<Vec<Job>, ()>) {
        let mut launch = Launch {
            waited: self.wait,
            log: &mut self.launched,
            lanes: &self.specs,
            timeout: self.timeout,
            unknown: &self.unknown,
        };
        if jobs.as_ref().is_ok_and(|j| !j.is_empty()) {
            self.core.claim_took(order.lane, self.wait, self.now);
        }
        self.core.claim_returned(
            order.lane,
            order.token,
            jobs,
            &mut launch,
            self.now,
            &mut self.fx,
        );
        self.collect();
    }

    pub(super) fn hand_back_written(&mut self, written: bool) {
        let mut launch = Launch {
            waited: self.wait,
            log: &mut self.launched,
            lanes: &self.specs,
            timeout: self.timeout,
            unknown: &self.unknown,
        };
        self.core
            .hand_back_written(written, &mut launch, self.now, &mut self.fx);
        self.collect();
    }

    pub(super) fn end(&mut self, keys: &[RunKey], result: RunResult) {
        let mut launch = Launch {
            waited: self.wait,
            log: &mut self.launched,
            lanes: &self.specs,
            timeout: self.timeout,
            unknown: &self.unknown,
        };
        self.core.runs_ended(
            keys.iter().map(|k| (*k, result.clone())),
            &mut launch,
            self.now,
            &mut self.fx,
        );
        self.collect();
    }

    pub(super) fn tick(&mut self, advance: Duration) {
        self.now += advance;
        let mut launch = Launch {
            waited: self.wait,
            log: &mut self.launched,
            lanes: &self.specs,
            timeout: self.timeout,
            unknown: &self.unknown,
        };
        self.core
            .tick(self.now, &mut self.probe, &mut launch, &mut self.fx);
        self.collect();
    }

    pub(super) fn started(&mut self, keys: &[RunKey]) {
        self.probe.started.extend(keys.iter().copied());
        self.core.runs_started(keys.iter().copied());
    }

    pub(super) fn pause(&mut self, lane: LaneId) -> Option<WaiterId> {
        let w = self.core.pause(lane, &mut self.fx);
        self.collect();
        w
    }

    pub(super) fn resume(&mut self, lane: LaneId) {
        self.core.resume(lane, &mut self.fx);
        self.collect();
    }

    pub(super) fn set_concurrency(&mut self, lane: LaneId, slots: u32) {
        self.core.set_concurrency(lane, slots, &mut self.fx);
        self.collect();
    }

    pub(super) fn shutdown(&mut self) -> WaiterId {
        let (w, _) = self.core.shutdown(&mut self.fx);
        self.collect();
        w
    }

    pub(super) fn grace_over(&mut self) -> super::shutdown::ShutdownCounts {
        let counts = self.core.grace_over(&mut self.fx);
        self.collect();
        counts
    }

    /// Keys launched so far, in order.
    pub(super) fn launched_keys(&self) -> Vec<RunKey> {
        self.launched.iter().map(|l| l.key).collect()
    }

    /// Keys handed back so far (released outcomes and hand-backs before a start).
    pub(super) fn handed_back(&self) -> Vec<RunKey> {
        self.outcomes
            .iter()
            .filter(|(_, a)| *a == Action::Release)
            .map(|(k, _)| *k)
            .chain(self.before_start.iter().copied())
            .collect()
    }
}

/// `n` ordinary jobs from id `first`, at priority `p`.
pub(super) fn jobs(first: i64, n: i64, p: i16) -> Vec<Job> {
    (first..first + n)
        .map(|id| Job {
            id,
            rescued: false,
            priority: p,
        })
        .collect()
}

pub(super) fn rescued(id: i64) -> Job {
    Job {
        id,
        rescued: true,
        priority: 5,
    }
}

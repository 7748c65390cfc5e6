//! Property tests: random event sequences against the core, checking after every event:
//!
//! - a lane's running + reserved slots never exceed its slots, except after its
//!   concurrency was lowered below that (documented), until it is back under;
//! - a lane never claims less urgent work than its range, borrows more urgent work only
//!   from busy lanes (full or paused) or gaps, and strict lanes borrow nothing;
//! - every claimed job is started or handed back exactly once, and every started run gets
//!   at most one outcome (exactly one by the end);
//! - at most one rescued job runs at a time, and never while a hand-back it waits for
//!   is unwritten;
//! - nothing starts in a lane after its pause was answered, nothing is claimed or
//!   started once shutdown began, nothing is claimed with no usable thread;
//! - shutdown ends with nothing running, and the waiter answered.

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use proptest::prelude::*;

use super::testkit::*;
use super::*;
use crate::lane::Lane;
use crate::outcome::{FailureCause, RunResult};

#[derive(Debug, Clone)]
enum Event {
    Wake(Option<i16>),
    /// Answer a pending claim (`pick` modulo how many) with up to `n` jobs.
    Answer {
        pick: usize,
        n: u32,
        rescued_every: u8,
        fail: bool,
    },
    End {
        pick: usize,
        how: u8,
    },
    Started {
        pick: usize,
    },
    /// Time passes; run `pick` (if any) is inside a poll since `poll_ms` ago.
    Tick {
        ms: u64,
        pick: Option<usize>,
        poll_ms: u64,
    },
    Pause(usize),
    Resume(usize),
    SetConcurrency(usize, u32),
    HandBackWritten(bool),
    LeaseLost {
        pick: usize,
    },
    Shutdown,
}

fn event() -> impl Strategy<Value = Event> {
    prop_oneof![
        12 => proptest::option::of(0i16..300).prop_map(Event::Wake),
        24 => (any::<usize>(), 0u32..6, 0u8..4, proptest::bool::weighted(0.1))
            .prop_map(|(pick, n, rescued_every, fail)| Event::Answer { pick, n, rescued_every, fail }),
        20 => (any::<usize>(), 0u8..5).prop_map(|(pick, how)| Event::End { pick, how }),
        8 => any::<usize>().prop_map(|pick| Event::Started { pick }),
        8 => (0u64..12_000, proptest::option::of(any::<usize>()), 0u64..400)
            .prop_map(|(ms, pick, poll_ms)| Event::Tick { ms, pick, poll_ms }),
        2 => (0usize..3).prop_map(Event::Pause),
        4 => (0usize..3).prop_map(Event::Resume),
        4 => (0usize..3, 1u32..6).prop_map(|(l, s)| Event::SetConcurrency(l, s)),
        8 => any::<bool>().prop_map(Event::HandBackWritten),
        2 => any::<usize>().prop_map(|pick| Event::LeaseLost { pick }),
        1 => Just(Event::Shutdown),
    ]
}

/// 1 to 3 lanes covering 0..=32767, each with 1 to 5 slots; some strict, some with a gap
/// below them, some prefetching up to 3 jobs, some with a latency target (3 ms: always
/// missed, the rig's jobs wait 5 ms; or 10 ms: always met).
fn lanes() -> impl Strategy<Value = Vec<Lane>> {
    (
        1usize..4,
        proptest::collection::vec((1u32..6, any::<bool>(), any::<bool>(), 0u32..4, 0u8..3), 3),
    )
        .prop_map(|(n, specs)| {
            let starts: Vec<i32> = match n {
                1 => vec![0],
                2 => vec![0, 100],
                _ => vec![0, 10, 100],
            };
            (0..n)
                .map(|i| {
                    let (slots, strict, gap, prefetch, target) = specs[i];
                    let lo = starts[i] + if gap && i > 0 { 3 } else { 0 };
                    let hi = starts.get(i + 1).copied().unwrap_or(32768) - 1;
                    let lane = Lane::new(format!("l{i}"))
                        .priorities(i16::try_from(lo).unwrap()..=i16::try_from(hi).unwrap())
                        .concurrency(slots)
                        .work_conserving(!strict)
                        .prefetch(prefetch);
                    match target {
                        1 => lane.target_wait(std::time::Duration::from_millis(3)),
                        2 => lane.target_wait(std::time::Duration::from_millis(10)),
                        _ => lane,
                    }
                })
                .collect()
        })
}

struct Model {
    rig: Rig,
    next_id: i64,
    /// Claimed keys and whether each was launched (true) or handed back (false).
    disposed: HashMap<RunKey, u32>,
    claimed: HashSet<RunKey>,
    launched: HashSet<RunKey>,
    rescued: HashSet<RunKey>,
    /// Outcomes (or stuck reports) per launched run.
    settled: HashMap<RunKey, u32>,
    stuck: HashSet<RunKey>,
    over_ok: Vec<bool>,
    paused_answered: Vec<bool>,
    pause_waiters: HashMap<WaiterId, usize>,
    ack_pending: bool,
    shutdown: bool,
}

impl Model {
    fn new(lanes: Vec<Lane>) -> Model {
        let n = lanes.len();
        Model {
            rig: Rig::with(lanes, config(1, 1)),
            next_id: 1,
            disposed: HashMap::new(),
            claimed: HashSet::new(),
            launched: HashSet::new(),
            rescued: HashSet::new(),
            settled: HashMap::new(),
            stuck: HashSet::new(),
            over_ok: vec![false; n],
            paused_answered: vec![false; n],
            pause_waiters: HashMap::new(),
            ack_pending: false,
            shutdown: false,
        }
    }

    fn active(&self) -> Vec<RunKey> {
        let mut v: Vec<RunKey> = self
            .launched
            .iter()
            .filter(|k| !self.settled.contains_key(k))
            .copied()
            .collect();
        v.sort_by_key(|k| (k.job, k.token));
        v
    }

    fn apply(&mut self, e: &Event) {
        let n = self.rig.specs.len();
        let mut claims_before = self.rig.claims.len();
        match e {
            Event::Wake(p) => self.rig.wake(*p),
            Event::Answer {
                pick,
                n: want,
                rescued_every,
                fail,
            } => {
                if self.rig.claims.is_empty() {
                    return;
                }
                let order = self.rig.claims.remove(pick % self.rig.claims.len());
                claims_before -= 1;
                let result = if *fail {
                    Err(())
                } else {
                    let hi = self.rig.specs[order.lane].hi;
                    let jobs: Vec<Job> = (0..(*want).min(order.limit))
                        .map(|k| {
                            let id = self.next_id;
                            self.next_id += 1;
                            let key = RunKey {
                                job: id,
                                token: order.token,
                            };
                            self.claimed.insert(key);
                            let rescued =
                                *rescued_every > 0 && id % i64::from(*rescued_every + 1) == 0;
                            if rescued {
                                self.rescued.insert(key);
                            }
                            let span = i32::from(hi) - i32::from(order.floor);
                            let p = i32::from(order.floor) + (k as i32 * 37) % (span + 1);
                            Job {
                                id,
                                rescued,
                                priority: p as i16,
                            }
                        })
                        .collect();
                    Ok(jobs)
                };
                self.rig.answer(order, result);
            }
            Event::End { pick, how } => {
                let active = self.active();
                let all: Vec<RunKey> = active.iter().chain(self.stuck.iter()).copied().collect();
                if all.is_empty() {
                    return;
                }
                let key = all[pick % all.len()];
                let result = match how {
                    0 => RunResult::Succeeded,
                    1 => RunResult::Failed {
                        error: "e".into(),
                        cause: FailureCause::Error,
                    },
                    2 => RunResult::Snoozed(Duration::from_secs(1)),
                    3 => RunResult::Abandoned,
                    _ => RunResult::Cancelled("c".into()),
                };
                if self.stuck.remove(&key) {
                    self.rig.end(&[key], RunResult::Abandoned);
                } else {
                    self.rig.end(&[key], result);
                }
            }
            Event::Started { pick } => {
                let active = self.active();
                if let Some(k) = active.get(pick % active.len().max(1)) {
                    self.rig.started(&[*k]);
                }
            }
            Event::Tick { ms, pick, poll_ms } => {
                self.rig.probe.in_poll.clear();
                let active = self.active();
                if let (Some(p), false) = (pick, active.is_empty()) {
                    let since =
                        self.rig.now + Duration::from_millis(*ms) - Duration::from_millis(*poll_ms);
                    self.rig
                        .probe
                        .in_poll
                        .insert(active[p % active.len()], since);
                }
                self.rig.tick(Duration::from_millis(*ms));
            }
            Event::Pause(l) => {
                let l = l % n;
                match self.rig.pause(l) {
                    None => self.paused_answered[l] = true,
                    Some(w) => {
                        self.pause_waiters.insert(w, l);
                    }
                }
            }
            Event::Resume(l) => {
                let l = l % n;
                self.paused_answered[l] = false;
                self.pause_waiters.retain(|_, lane| *lane != l);
                self.rig.resume(l);
            }
            Event::SetConcurrency(l, slots) => {
                let l = l % n;
                let a = &self.rig.core.lanes()[l].account;
                if a.running() + a.reserved() > *slots {
                    self.over_ok[l] = true;
                }
                self.rig.set_concurrency(l, *slots);
            }
            Event::HandBackWritten(ok) => {
                self.ack_pending = false;
                self.rig.hand_back_written(*ok);
            }
            Event::LeaseLost { pick } => {
                let active = self.active();
                if let Some(k) = active.get(pick % active.len().max(1)) {
                    self.rig.core.leases_lost([*k]);
                }
            }
            Event::Shutdown => {
                self.shutdown = true;
                self.rig.shutdown();
            }
        }
        self.check(claims_before);
    }

    /// Takes in what the core did and checks every invariant.
    fn check(&mut self, claims_before: usize) {
        let rig = &mut self.rig;
        // New claims respect ranges and borrowing.
        for order in &rig.claims[claims_before..] {
            assert!(!self.shutdown, "claim during shutdown: {order:?}");
            assert!(
                rig.core.threads().usable() > 0,
                "claim with no thread to start it"
            );
            let spec = &rig.specs[order.lane];
            assert!(order.floor <= spec.lo);
            if order.floor < spec.lo {
                let a = &rig.core.lanes()[order.lane].account;
                assert!(
                    order.limit <= a.slots(),
                    "a borrowing claim asks for no prefetch: {order:?} {a:?}"
                );
            }
            if !spec.work_conserving {
                assert_eq!(order.floor, spec.lo, "a strict lane borrows nothing");
            }
            for p in order.floor..spec.lo {
                if let Some(owner) = rig.core.lanes().iter().find(|l| l.spec.owns(p)) {
                    assert!(
                        owner.account.busy(),
                        "lane {} borrowed {p} from a lane with room",
                        order.lane
                    );
                }
            }
        }
        // Launches.
        let launched: Vec<Launched> = std::mem::take(&mut rig.launched);
        for l in &launched {
            assert!(
                l.job.priority <= rig.specs[l.lane].hi,
                "less urgent than its range"
            );
            assert!(!self.shutdown, "started during shutdown");
            assert!(!self.paused_answered[l.lane], "started in a paused lane");
            assert!(self.claimed.contains(&l.key));
            *self.disposed.entry(l.key).or_insert(0) += 1;
            self.launched.insert(l.key);
            if l.job.rescued {
                assert!(
                    !self.ack_pending,
                    "a rescued job started before its hand-back"
                );
            }
        }
        // Hand-backs and outcomes.
        if !rig.before_start.is_empty() {
            self.ack_pending = true;
        }
        for key in rig.before_start.drain(..) {
            assert!(!self.launched.contains(&key));
            *self.disposed.entry(key).or_insert(0) += 1;
        }
        for (key, _) in rig.outcomes.drain(..) {
            if self.launched.contains(&key) {
                *self.settled.entry(key).or_insert(0) += 1;
            } else {
                *self.disposed.entry(key).or_insert(0) += 1;
            }
        }
        for s in rig.stuck.drain(..) {
            self.stuck.insert(s.key);
            *self.settled.entry(s.key).or_insert(0) += 1;
        }
        for w in rig.replies.drain(..) {
            if let Some(l) = self.pause_waiters.remove(&w) {
                self.paused_answered[l] = true;
            }
        }
        rig.aborts.clear();
        rig.renewals.clear();
        rig.threads.clear();
        assert!(
            self.disposed.values().all(|n| *n == 1),
            "a job started or handed back twice"
        );
        assert!(
            self.settled.values().all(|n| *n == 1),
            "a run settled twice"
        );
        // Slots.
        for (i, lane) in rig.core.lanes().iter().enumerate() {
            let a = &lane.account;
            let room = a.slots() + a.prefetch();
            if a.running() + a.held() + a.reserved() <= room && a.running() <= a.slots() {
                self.over_ok[i] = false;
            }
            assert!(
                self.over_ok[i]
                    || (a.running() + a.held() + a.reserved() <= room && a.running() <= a.slots()),
                "lane {i}: {a:?}"
            );
            assert!(a.limit() <= a.slots() && a.limit() >= 1, "lane {i}: {a:?}");
            if a.prefetch() == 0 {
                assert_eq!(a.held(), 0);
            }
            assert!(lane.stuck <= a.running());
        }
        // Rescued jobs.
        let rescued_active = self
            .launched
            .iter()
            .filter(|k| self.rescued.contains(k) && !self.settled.contains_key(k))
            .count();
        assert!(rescued_active <= 1, "{rescued_active} rescued jobs running");
    }

    /// Shuts down and lets everything finish; checks nothing is left.
    fn finish(&mut self, grace: bool) {
        self.apply(&Event::Shutdown);
        let mut guard = 0;
        loop {
            guard += 1;
            assert!(guard < 1000);
            if !self.rig.claims.is_empty() {
                self.apply(&Event::Answer {
                    pick: 0,
                    n: 3,
                    rescued_every: 0,
                    fail: false,
                });
            } else if self.ack_pending {
                self.apply(&Event::HandBackWritten(true));
            } else if grace {
                self.rig.grace_over();
                self.stuck.clear();
                self.check(self.rig.claims.len());
                break;
            } else if let Some(k) = self.active().first().copied().or(self
                .stuck
                .iter()
                .next()
                .copied())
            {
                self.stuck.remove(&k);
                self.rig.end(&[k], RunResult::Succeeded);
                self.check(self.rig.claims.len());
            } else {
                break;
            }
        }
        assert_eq!(self.rig.core.running(), 0);
        assert!(self.rig.core.is_quiet());
        for key in &self.claimed {
            assert_eq!(
                self.disposed.get(key),
                Some(&1),
                "{key:?} neither started nor handed back"
            );
        }
        if !grace {
            for key in &self.launched {
                assert_eq!(self.settled.get(key), Some(&1), "{key:?} never settled");
            }
            for lane in self.rig.core.lanes() {
                assert_eq!(lane.account.running(), 0);
            }
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 300, ..ProptestConfig::default() })]

    #[test]
    fn invariants_hold_over_random_events(
        lanes in lanes(),
        events in proptest::collection::vec(event(), 1..150),
        grace in any::<bool>(),
    ) {
        let mut m = Model::new(lanes);
        for e in &events {
            if m.shutdown && matches!(e, Event::Shutdown) {
                continue;
            }
            m.apply(e);
        }
        m.finish(grace);
    }
}

//! The core's rules, one test each, without a database.

use std::time::Duration;

use super::testkit::*;
use super::*;
use crate::lane::Lane;
use crate::outcome::{Action, RunResult};

fn one_lane(slots: u32) -> Rig {
    Rig::new(vec![Lane::new("only").concurrency(slots)])
}

fn key(job: i64, token: i64) -> RunKey {
    RunKey { job, token }
}

#[test]
fn claims_ask_for_exactly_the_free_slots() {
    let mut r = one_lane(3);
    r.wake(None);
    let c = r.take_claim(0);
    assert_eq!((c.limit, c.floor), (3, 0));
    r.wake(Some(5));
    assert!(r.claims.is_empty(), "one claim per lane in flight");
    r.answer(c, Ok(jobs(1, 2, 5)));
    assert_eq!(r.launched.len(), 2);
    // The hint that came during the claim is served now, with the one free slot.
    let c = r.take_claim(0);
    assert_eq!(c.limit, 1);
    r.answer(c, Ok(vec![]));
    r.end(&r.launched_keys(), RunResult::Succeeded);
    assert!(r.claims.is_empty(), "no hint, claim not full: wait for one");
    assert!(r.outcomes.iter().all(|(_, a)| *a == Action::Complete));
    assert_eq!(r.outcomes.len(), 2);
}

#[test]
fn a_full_claim_claims_again_as_slots_free_and_closes_the_notify_gate() {
    let mut r = one_lane(2);
    r.wake(None);
    let c = r.take_claim(0);
    r.answer(c, Ok(jobs(1, 2, 100)));
    assert!(
        !r.gate.needs_notify(100),
        "backlogged: its enqueues skip NOTIFY"
    );
    r.end(&[key(1, 1)], RunResult::Succeeded);
    let c = r.take_claim(0);
    assert_eq!(c.limit, 1);
    r.answer(c, Ok(vec![]));
    assert!(r.gate.needs_notify(100));
}

#[test]
fn at_most_one_rescued_job_runs_here_and_extras_go_back_before_it_starts() {
    let mut r = one_lane(8);
    r.wake(None);
    let c = r.take_claim(0);
    r.answer(
        c,
        Ok(vec![
            rescued(1),
            rescued(2),
            rescued(3),
            jobs(4, 1, 5).remove(0),
        ]),
    );
    assert_eq!(
        r.launched_keys(),
        [key(4, 1)],
        "the ordinary job starts at once"
    );
    assert_eq!(r.before_start, [key(2, 1), key(3, 1)]);
    // The candidate waits for the hand-back to be written.
    r.hand_back_written(true);
    assert_eq!(r.launched_keys(), [key(4, 1), key(1, 1)]);
    // While it runs, another rescued job is handed back plainly (nothing waits for it).
    r.wake(None);
    let c = r.take_claim(0);
    r.answer(c, Ok(vec![rescued(9)]));
    assert!(r.outcomes.contains(&(key(9, 2), Action::Release)));
    assert_eq!(r.launched.len(), 2);
    // Once it ended, the next rescued job may run.
    r.end(&[key(1, 1)], RunResult::Succeeded);
    r.wake(None);
    let c = r.take_claim(0);
    r.answer(c, Ok(vec![rescued(10)]));
    assert_eq!(r.launched.last().map(|l| l.key), Some(key(10, c.token)));
}

#[test]
fn a_held_rescued_job_goes_back_too_if_the_hand_back_failed_or_its_lane_stopped() {
    let mut r = one_lane(4);
    r.wake(None);
    let c = r.take_claim(0);
    r.answer(c, Ok(vec![rescued(1), rescued(2)]));
    r.hand_back_written(false);
    assert!(r.launched.is_empty());
    assert_eq!(r.handed_back(), [key(1, 1), key(2, 1)]);
    // And when the lane was paused meanwhile.
    r.wake(None);
    let c = r.take_claim(0);
    r.answer(c, Ok(vec![rescued(3), rescued(4)]));
    assert_eq!(r.pause(0), None);
    r.hand_back_written(true);
    assert!(r.launched.is_empty(), "nothing starts in a paused lane");
    assert!(r.outcomes.contains(&(key(3, 2), Action::Release)));
}

#[test]
fn pause_is_answered_when_the_claim_in_flight_returns_and_its_jobs_go_back() {
    let mut r = one_lane(4);
    r.wake(None);
    let c = r.take_claim(0);
    let waiter = r.pause(0).expect("a claim is in flight");
    assert!(r.replies.is_empty());
    r.answer(c, Ok(jobs(1, 3, 5)));
    assert_eq!(r.replies, [waiter]);
    assert!(r.launched.is_empty());
    assert_eq!(r.handed_back().len(), 3);
    r.wake(None);
    assert!(r.claims.is_empty(), "paused");
    assert_eq!(r.pause(0), None, "no claim in flight: answered at once");
    r.resume(0);
    assert_eq!(r.take_claim(0).limit, 4, "resume claims at once");
}

#[test]
fn lowering_concurrency_below_the_running_count_lets_runs_finish_first() {
    let mut r = one_lane(4);
    r.wake(None);
    let c = r.take_claim(0);
    r.answer(c, Ok(jobs(1, 4, 5)));
    r.set_concurrency(0, 2);
    let keys = r.launched_keys();
    r.wake(None);
    r.end(&keys[..1], RunResult::Succeeded);
    r.end(&keys[1..2], RunResult::Succeeded);
    assert!(r.claims.is_empty(), "2 running: at the new limit");
    r.end(&keys[2..3], RunResult::Succeeded);
    assert_eq!(r.take_claim(0).limit, 1);
    assert_eq!(r.core.lanes()[0].account.slots(), 2);
}

#[test]
fn a_lane_borrows_only_from_full_or_paused_lanes() {
    let mut r = Rig::new(vec![
        Lane::new("urgent").priorities(0..=9).concurrency(1),
        Lane::new("bulk").priorities(10..).concurrency(4),
    ]);
    r.wake(Some(50));
    let bulk = r.take_claim(1);
    assert_eq!(
        bulk.floor, 10,
        "the urgent lane has room: its jobs are left to it"
    );
    r.answer(bulk, Ok(vec![]));
    r.wake(Some(0));
    let urgent = r.take_claim(0);
    let bulk = r.take_claim(1);
    assert_eq!(
        bulk.floor, 0,
        "the urgent lane's only slot is taken by its claim"
    );
    r.answer(urgent, Ok(jobs(1, 1, 0)));
    r.answer(bulk, Ok(vec![]));
    r.wake(None);
    assert_eq!(r.take_claim(1).floor, 0, "urgent lane full: help");
    let mut r = Rig::new(vec![
        Lane::new("urgent").priorities(0..=9).concurrency(1),
        Lane::new("bulk").priorities(10..).concurrency(4),
    ]);
    r.pause(0);
    r.wake(None);
    assert_eq!(r.take_claim(1).floor, 0, "urgent lane paused: help");
    assert!(r.claims.is_empty());
}

#[test]
fn shutdown_hands_back_late_claims_and_answers_once_quiet() {
    let mut r = Rig::new(vec![
        Lane::new("a").priorities(0..=9).concurrency(2),
        Lane::new("b").priorities(10..).concurrency(2),
    ]);
    r.wake(None);
    let a = r.take_claim(0);
    let b = r.take_claim(1);
    r.answer(a, Ok(jobs(1, 2, 1)));
    let waiter = r.shutdown();
    assert!(r.replies.is_empty(), "2 running, 1 claim in flight");
    r.answer(b, Ok(jobs(3, 2, 50)));
    assert_eq!(
        r.handed_back(),
        [key(3, 2), key(4, 2)],
        "claimed after shutdown"
    );
    r.end(&[key(1, 1)], RunResult::Succeeded);
    r.wake(None);
    assert!(r.claims.is_empty(), "no claim once shutting down");
    assert!(r.replies.is_empty());
    r.end(&[key(2, 1)], RunResult::Succeeded);
    assert_eq!(r.replies, [waiter]);
    assert!(r.core.is_quiet());
}

#[test]
fn the_grace_period_releases_what_still_runs() {
    let mut r = one_lane(3);
    r.wake(None);
    let c = r.take_claim(0);
    r.answer(c, Ok(jobs(1, 3, 1)));
    r.shutdown();
    r.end(&[key(1, 1)], RunResult::Succeeded);
    let counts = r.grace_over();
    assert_eq!((counts.finished, counts.released), (1, 2));
    assert_eq!(r.aborts.len(), 2);
    assert_eq!(r.handed_back().len(), 2);
    assert_eq!(r.core.running(), 0);
}

#[test]
fn a_run_past_its_deadline_is_timed_out_and_its_slot_reused() {
    let mut r = one_lane(1);
    r.wake(None);
    let c = r.take_claim(0);
    r.answer(c, Ok(jobs(1, 1, 1)));
    r.tick(TIMEOUT - Duration::from_millis(1));
    assert!(r.outcomes.is_empty());
    r.wake(None);
    r.tick(Duration::from_millis(1));
    assert_eq!(r.aborts, [key(1, 1)]);
    assert!(matches!(
        r.outcomes[..],
        [(
            _,
            Action::Retry {
                cause: "timeout",
                ..
            }
        )]
    ));
    assert_eq!(r.take_claim(0).limit, 1, "its slot is reused at once");
    r.end(&[key(1, 1)], RunResult::Succeeded);
    assert_eq!(r.outcomes.len(), 1, "a late outcome is ignored");
}

#[test]
fn a_run_blocking_its_thread_keeps_its_slot_and_its_thread_is_replaced() {
    let mut r = one_lane(2);
    r.wake(None);
    let c = r.take_claim(0);
    r.answer(c, Ok(jobs(1, 2, 1)));
    let start = r.now;
    // Job 1 has been inside one poll since it started; job 2 only just now.
    r.probe.in_poll.insert(key(1, 1), start);
    r.probe.in_poll.insert(key(2, 1), start + TIMEOUT);
    r.tick(TIMEOUT);
    assert_eq!(r.stuck.len(), 1);
    let s = &r.stuck[0];
    assert_eq!((s.key, s.blocked_for), (key(1, 1), TIMEOUT));
    assert_eq!(r.threads, [ThreadChange::Replace]);
    assert_eq!(r.aborts, [key(1, 1)]);
    assert!(
        r.outcomes.is_empty(),
        "the actor writes a stuck run's outcome"
    );
    assert_eq!(r.core.lanes()[0].stuck, 1);
    // Job 2 is in a short poll: looked at again next tick, when it has left it.
    r.probe.in_poll.remove(&key(2, 1));
    r.tick(Duration::from_millis(50));
    assert_eq!(r.aborts, [key(1, 1), key(2, 1)]);
    assert_eq!(r.outcomes.len(), 1, "job 2 timed out");
    r.wake(None);
    assert_eq!(r.take_claim(0).limit, 1, "the stuck run keeps its slot");
    // When its thread comes free the future is dropped: the slot comes back, no outcome.
    r.end(&[key(1, 1)], RunResult::Abandoned);
    assert_eq!(r.threads.last(), Some(&ThreadChange::Freed));
    assert_eq!(r.outcomes.len(), 1);
    assert_eq!(r.core.lanes()[0].account.running(), 0);
}

#[test]
fn with_every_thread_stuck_past_the_cap_nothing_is_claimed() {
    let mut r = Rig::with(vec![Lane::new("only").concurrency(4)], config(1, 0));
    r.wake(None);
    let c = r.take_claim(0);
    r.answer(c, Ok(jobs(1, 1, 1)));
    r.probe.in_poll.insert(key(1, 1), r.now);
    r.tick(TIMEOUT);
    assert_eq!(r.threads, [ThreadChange::Reduced { usable: 0 }]);
    r.wake(None);
    assert!(
        r.claims.is_empty(),
        "no thread could start what a claim brings"
    );
    r.end(&[key(1, 1)], RunResult::Succeeded);
    assert_eq!(
        r.take_claim(0).limit,
        4,
        "claims again once the thread is free"
    );
}

#[test]
fn only_started_runs_are_renewed_and_unstarted_ones_are_handed_back() {
    let mut r = one_lane(3);
    r.timeout = Duration::from_secs(60);
    r.wake(None);
    let c = r.take_claim(0);
    r.answer(c, Ok(jobs(1, 3, 1)));
    r.started(&[key(1, 1), key(2, 1)]);
    r.core.leases_lost([key(2, 1)]);
    r.tick(Duration::ZERO);
    assert_eq!(
        r.renewals,
        [key(1, 1)],
        "not job 2 (lease lost) nor 3 (not started)"
    );
    r.tick(Duration::from_secs(10));
    assert_eq!(r.aborts, [key(3, 1)]);
    assert_eq!(r.handed_back(), [key(3, 1)]);
    assert_eq!(r.core.running(), 2);
}

#[test]
fn a_job_of_an_unknown_kind_is_handed_back() {
    let mut r = one_lane(2);
    r.unknown.insert(2);
    r.wake(None);
    let c = r.take_claim(0);
    r.answer(c, Ok(jobs(1, 2, 1)));
    assert_eq!(r.launched_keys(), [key(1, 1)]);
    assert_eq!(r.handed_back(), [key(2, 1)]);
    assert_eq!(r.core.lanes()[0].account.running(), 1);
}

#[test]
fn a_failed_claim_waits_for_the_next_wake() {
    let mut r = one_lane(2);
    r.wake(None);
    let c = r.take_claim(0);
    r.answer(c, Err(()));
    assert!(r.claims.is_empty());
    r.wake(None);
    assert_eq!(r.take_claim(0).limit, 2);
}

fn prefetching(slots: u32, prefetch: u32) -> Rig {
    Rig::new(vec![
        Lane::new("high").priorities(0..=9).concurrency(1),
        Lane::new("low")
            .priorities(10..)
            .concurrency(slots)
            .prefetch(prefetch),
    ])
}

#[test]
fn a_prefetching_lane_holds_jobs_ready_and_starts_them_without_a_claim() {
    let mut r = prefetching(2, 4);
    r.wake(Some(100));
    let c = r.take_claim(1);
    assert_eq!(
        (c.limit, c.floor),
        (6, 10),
        "slots + prefetch, own range only"
    );
    r.answer(c, Ok(jobs(1, 6, 100)));
    assert_eq!(r.launched_keys(), [key(1, 1), key(2, 1)]);
    assert_eq!(r.core.lanes()[1].account.held(), 4);
    assert!(r.claims.is_empty(), "full: nothing to claim");
    // A finished run is replaced from the held jobs, in order, with no claim.
    r.end(&[key(1, 1)], RunResult::Succeeded);
    assert_eq!(r.launched.last().map(|l| l.key), Some(key(3, 1)));
    assert!(r.claims.is_empty(), "3 held: above the low-water mark (2)");
    r.end(&[key(2, 1)], RunResult::Succeeded);
    assert_eq!(r.launched.last().map(|l| l.key), Some(key(4, 1)));
    let c = r.take_claim(1);
    assert_eq!(c.limit, 2, "down to 2 held: refill the room");
}

#[test]
fn a_borrowing_claim_never_prefetches_more_urgent_work() {
    let mut r = prefetching(2, 4);
    // The urgent lane is full, so the low lane may borrow: only for its open slots.
    r.wake(Some(0));
    let h = r.take_claim(0);
    r.answer(h, Ok(jobs(1, 1, 0)));
    let c = r.take_claim(1);
    assert_eq!((c.limit, c.floor), (2, 0), "borrowing: open slots only");
    r.answer(c, Ok(jobs(2, 2, 5)));
    assert_eq!(r.core.lanes()[1].account.held(), 0);
    // Slots full, claims again for its room: its own range only.
    let c = r.take_claim(1);
    assert_eq!((c.limit, c.floor), (4, 10));
}

#[test]
fn held_jobs_are_handed_back_on_pause_resize_and_shutdown_and_renewed_meanwhile() {
    let mut r = prefetching(1, 2);
    r.wake(Some(100));
    let c = r.take_claim(1);
    r.answer(c, Ok(jobs(1, 3, 100)));
    assert_eq!(r.core.lanes()[1].account.held(), 2);
    r.started(&[key(1, 1)]);
    r.tick(Duration::from_secs(1));
    assert!(
        r.renewals.contains(&key(2, 1)) && r.renewals.contains(&key(3, 1)),
        "held leases are renewed: {:?}",
        r.renewals
    );
    r.pause(1);
    assert_eq!(r.handed_back(), [key(2, 1), key(3, 1)]);
    assert_eq!(r.core.lanes()[1].account.held(), 0);
    r.resume(1);
    let c = r.take_claim(1);
    assert_eq!(c.limit, 2, "one slot runs: room for 2");
    r.answer(c, Ok(jobs(4, 2, 100)));
    assert_eq!(r.core.lanes()[1].account.held(), 2);
    r.outcomes.clear();
    r.set_concurrency(1, 2);
    assert!(r.handed_back().is_empty(), "raising keeps them");
    assert_eq!(r.launched.last().map(|l| l.key), Some(key(1, 1)));
    r.claims.clear();
    r.set_concurrency(1, 1);
    assert_eq!(
        r.handed_back(),
        [key(4, 2), key(5, 2)],
        "lowering hands back"
    );
    let c = r.take_claim(1);
    r.answer(c, Ok(jobs(6, 2, 100)));
    assert_eq!(r.core.lanes()[1].account.held(), 2);
    r.outcomes.clear();
    r.shutdown();
    assert_eq!(
        r.handed_back(),
        [key(6, 3), key(7, 3)],
        "shutdown hands back"
    );
    assert_eq!(r.core.lanes()[1].account.held(), 0);
    r.end(&[key(1, 1)], RunResult::Succeeded);
    assert!(r.core.is_quiet());
}

#[test]
fn a_lost_lease_drops_a_held_job_without_an_outcome() {
    let mut r = prefetching(1, 2);
    r.wake(Some(100));
    let c = r.take_claim(1);
    r.answer(c, Ok(jobs(1, 3, 100)));
    r.core.leases_lost([key(2, 1)]);
    assert_eq!(r.core.lanes()[1].account.held(), 1);
    r.end(&[key(1, 1)], RunResult::Succeeded);
    assert_eq!(r.launched.last().map(|l| l.key), Some(key(3, 1)));
    assert!(r.outcomes.iter().all(|(k, _)| *k != key(2, 1)));
}

fn targeted(low_slots: u32) -> Rig {
    Rig::new(vec![
        Lane::new("high")
            .priorities(0..=9)
            .concurrency(2)
            .target_wait(Duration::from_millis(5)),
        Lane::new("low").priorities(10..).concurrency(low_slots),
    ])
}

/// The target is a p99: one wait over it is allowed before any cut; spend that.
fn spend_allowance(r: &mut Rig) {
    let now = r.now;
    r.core.claim_took(0, Duration::from_millis(8), now);
    assert_eq!(r.core.lanes()[1].share, 1.0, "one wait over is allowed");
}

#[test]
fn a_missed_target_throttles_less_urgent_lanes_and_calm_gives_slots_back() {
    let mut r = targeted(64);
    r.wake(None);
    let h = r.take_claim(0);
    let l = r.take_claim(1);
    assert_eq!(l.limit, 64);
    r.answer(l, Ok(jobs(100, 64, 100)));
    spend_allowance(&mut r);
    // An urgent job waited 8 ms: the low lane may fill half its slots.
    r.wait = Duration::from_millis(8);
    r.answer(h, Ok(jobs(1, 1, 0)));
    assert_eq!(r.core.lanes()[1].account.limit(), 32);
    assert_eq!(r.core.lanes()[1].share, 0.5);
    // 40 low runs end: nothing is claimed until fewer than 32 run.
    let low: Vec<RunKey> = (100..140).map(|j| key(j, 2)).collect();
    r.end(&low, RunResult::Succeeded);
    let c = r.take_claim(1);
    assert_eq!(c.limit, 32 - 24, "24 still run under a limit of 32");
    r.answer(c, Ok(vec![]));
    // Calm for long enough: a sixteenth of the slots comes back per tick.
    r.wait = Duration::from_millis(1);
    r.tick(Duration::from_millis(300));
    assert_eq!(r.core.lanes()[1].account.limit(), 36);
    for _ in 0..20 {
        r.tick(Duration::from_millis(250));
    }
    assert_eq!(r.core.lanes()[1].account.limit(), 64);
    assert_eq!(r.core.lanes()[1].share, 1.0);
}

#[test]
fn a_throttled_lane_holds_its_claim_while_the_urgent_claim_is_in_flight() {
    let mut r = targeted(8);
    r.wake(None);
    let h = r.take_claim(0);
    let l = r.take_claim(1);
    r.answer(l, Ok(jobs(100, 8, 100)));
    spend_allowance(&mut r);
    r.wait = Duration::from_millis(8);
    r.answer(h, Ok(jobs(1, 2, 0)));
    assert_eq!(r.core.lanes()[1].account.limit(), 4);
    // The urgent lane claims again (a slot frees) while low runs end.
    r.end(&[key(1, 1)], RunResult::Succeeded);
    let h = r.take_claim(0);
    let low: Vec<RunKey> = (100..106).map(|j| key(j, 2)).collect();
    r.end(&low, RunResult::Succeeded);
    assert!(
        r.claims.iter().all(|c| c.lane != 1),
        "held while the urgent claim is in flight: {:?}",
        r.claims
    );
    r.wait = Duration::from_millis(1);
    r.answer(h, Ok(vec![]));
    let l = r.take_claim(1);
    assert_eq!(l.limit, 2, "4 allowed, 2 still run");
}

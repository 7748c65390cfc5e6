//! The NOTIFY gate: whether an enqueue through this engine must wake workers.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use super::LaneSpec;
use crate::enqueue::NewJob;

/// Which lanes of this engine are known to have a backlog: their last claim came back
/// full and they have no free slot, so they claim again the moment a slot frees. Written
/// by the dispatch core, read by every enqueue through this engine to skip a NOTIFY that
/// could only wake lanes already busy with the same work: NOTIFY takes a cluster-wide
/// lock at commit and costs ~20% of a single-job enqueue transaction.
#[derive(Debug)]
pub(crate) struct NotifyGate {
    /// `skip_notify_when_backlogged`: when off, every enqueue notifies.
    enabled: bool,
    /// The queue this engine claims from: its lanes say nothing about other queues.
    queue: String,
    /// Each lane (in lane order) and whether it is backlogged.
    lanes: Box<[(Arc<LaneSpec>, AtomicBool)]>,
}

impl NotifyGate {
    pub(crate) fn new(lanes: &[Arc<LaneSpec>], queue: &str, enabled: bool) -> Self {
        NotifyGate {
            enabled,
            queue: queue.to_string(),
            lanes: lanes
                .iter()
                .map(|spec| (spec.clone(), AtomicBool::new(false)))
                .collect(),
        }
    }

    /// Records whether lane `lane` is working through a backlog.
    pub(crate) fn set(&self, lane: usize, backlogged: bool) {
        self.lanes[lane].1.store(backlogged, Ordering::Relaxed);
    }

    /// Whether workers need a NOTIFY for these jobs: yes unless every job due now is of
    /// this engine's queue and owned by a lane here that is working through a backlog.
    pub(crate) fn needs_notify_for(&self, jobs: &[NewJob]) -> bool {
        !self.enabled
            || jobs
                .iter()
                .filter(|j| j.run_at.is_none() && j.delay_s.is_none())
                .any(|j| j.queue != self.queue || self.needs_notify(j.priority))
    }

    /// Whether workers need a NOTIFY for a job of priority `p` in this engine's queue:
    /// not when the lane that owns `p` here is already working through a backlog.
    pub(crate) fn needs_notify(&self, p: i16) -> bool {
        match self.lanes.iter().find(|(spec, _)| spec.owns(p)) {
            Some((_, backlogged)) => !backlogged.load(Ordering::Relaxed),
            None => true,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::lane::Lane;

    fn specs(lanes: Vec<Lane>) -> Vec<Arc<LaneSpec>> {
        lanes.into_iter().map(|l| l.split().0).collect()
    }

    #[test]
    fn notify_is_skipped_only_for_a_backlogged_owner_lane() {
        let lanes = specs(vec![
            Lane::new("u").priorities(0..=9),
            Lane::new("b").priorities(10..),
        ]);
        let b = NotifyGate::new(&lanes, "default", true);
        assert!(b.needs_notify(0) && b.needs_notify(500));
        b.set(1, true);
        assert!(b.needs_notify(5), "the urgent lane is idle: wake it");
        assert!(!b.needs_notify(500), "the bulk lane claims again anyway");
        b.set(1, false);
        assert!(b.needs_notify(500));
        let gap = NotifyGate::new(
            &specs(vec![Lane::new("b").priorities(10..)]),
            "default",
            true,
        );
        gap.set(0, true);
        assert!(
            gap.needs_notify(3),
            "no lane owns it here: other processes might"
        );
        let job = |queue: &str, priority: i16| NewJob {
            kind: "k".into(),
            queue: queue.into(),
            priority,
            args: "{}".into(),
            max_attempts: 1,
            run_at: None,
            delay_s: None,
            timeout_ms: None,
            unique_key: None,
            traceparent: None,
        };
        assert!(!gap.needs_notify_for(&[job("default", 50)]));
        assert!(
            gap.needs_notify_for(&[job("mail", 50)]),
            "another queue's workers"
        );
        assert!(gap.needs_notify_for(&[job("default", 50), job("default", 3)]));
        let later = NewJob {
            delay_s: Some(5.0),
            ..job("mail", 1)
        };
        assert!(
            !gap.needs_notify_for(&[later]),
            "scheduled jobs never notify"
        );
        let off = NotifyGate::new(&lanes, "default", false);
        off.set(1, true);
        assert!(off.needs_notify_for(&[job("default", 500)]), "disabled");
    }
}

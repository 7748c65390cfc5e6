//! The heartbeat: every interval the engine applies the lane controls operators set in
//! the database (pause, resume, concurrency; see migration 6) that are newer than the
//! ones it applied, then records its heartbeat — its lanes as they are now, with the
//! control version each has applied — so the dashboard shows every engine connected
//! and whether a change reached it. A stopping engine deletes its row; one that dies
//! is hidden after three intervals and deleted by the others later.

use std::collections::HashMap;
use std::time::Duration;

use actix::prelude::*;
use serde_json::json;

use crate::actor::supervisor::inbox::{LaneNow, SnapshotLanes};
use crate::actor::LogLimiter;
use crate::commands::{Pause, Resume, SetConcurrency};
use crate::store::heartbeat::{Beat, LaneControl};
use crate::store::Store;

/// Where the heartbeat reads the lanes and sends the controls it applies.
pub(crate) struct HeartbeatReports {
    pub(crate) lanes: Recipient<SnapshotLanes>,
    pub(crate) pause: Recipient<Pause>,
    pub(crate) resume: Recipient<Resume>,
    pub(crate) concurrency: Recipient<SetConcurrency>,
}

pub(crate) struct Heartbeat {
    store: Store,
    queue: String,
    worker_id: String,
    interval: Duration,
    reports: std::sync::Arc<HeartbeatReports>,
    /// The control version applied, per lane.
    applied: HashMap<String, i64>,
    busy: bool,
    log: LogLimiter,
}

/// Stops the heartbeat and deletes the engine's row.
#[derive(Message)]
#[rtype(result = "()")]
pub(crate) struct StopHeartbeat;

impl Heartbeat {
    pub(crate) fn new(
        store: Store,
        queue: String,
        worker_id: String,
        interval: Duration,
        reports: HeartbeatReports,
    ) -> Self {
        Heartbeat {
            store,
            queue,
            worker_id,
            interval,
            reports: std::sync::Arc::new(reports),
            applied: HashMap::new(),
            busy: false,
            log: LogLimiter::new(Duration::from_secs(30)),
        }
    }

    fn beat(&mut self, ctx: &mut Context<Self>) {
        if self.busy {
            return;
        }
        self.busy = true;
        let store = self.store.clone();
        let reports = self.reports.clone();
        let applied = self.applied.clone();
        let queue = self.queue.clone();
        let worker_id = self.worker_id.clone();
        let interval_ms = self.interval.as_millis().clamp(1, i32::MAX as u128) as i32;
        async move {
            let controls = store.lane_controls(&queue).await;
            let mut done = Vec::new();
            if let (Ok(controls), Ok(now)) = (&controls, reports.lanes.send(SnapshotLanes).await) {
                for c in to_apply(controls, &applied, &now.lanes) {
                    let lane = c.lane.clone();
                    let _ = if c.paused {
                        reports.pause.send(Pause(lane.clone())).await
                    } else {
                        reports.resume.send(Resume(lane.clone())).await
                    };
                    if let Some(n) = c.concurrency.and_then(|n| u32::try_from(n).ok()) {
                        let _ = reports
                            .concurrency
                            .send(SetConcurrency { lane: lane.clone(), slots: n })
                            .await;
                    }
                    tracing::info!(lane, version = c.version, paused = c.paused, concurrency = c.concurrency, "lane control applied");
                    done.push((lane, c.version));
                }
            }
            let mut versions = applied;
            versions.extend(done.iter().cloned());
            let Ok(now) = reports.lanes.send(SnapshotLanes).await else {
                return (done, controls.err());
            };
            let lanes: Vec<_> = now
                .lanes
                .iter()
                .map(|l| {
                    json!({
                        "name": l.name, "lo": l.lo, "hi": l.hi, "slots": l.slots,
                        "running": l.running, "paused": l.paused,
                        "applied": versions.get(&l.name).copied().unwrap_or(0),
                    })
                })
                .collect();
            let beat = Beat {
                worker_id: &worker_id,
                queue: &queue,
                interval_ms,
                listener: now.listener,
                database_ok: now.database_ok,
                lanes: serde_json::Value::Array(lanes),
            };
            let written = store.heartbeat(&beat).await;
            (done, controls.err().or(written.err()))
        }
        .into_actor(self)
        .map(|(done, error), act, _| {
            act.busy = false;
            act.applied.extend(done);
            if let Some(e) = error {
                if let Some(suppressed) = act.log.allow() {
                    tracing::warn!(error = %e, suppressed, "engine heartbeat failed; retrying next interval");
                }
            }
        })
        .spawn(ctx);
    }
}

/// The controls to apply now: those of lanes this engine runs, newer than the version it
/// applied.
fn to_apply<'a>(
    controls: &'a [LaneControl],
    applied: &HashMap<String, i64>,
    lanes: &[LaneNow],
) -> Vec<&'a LaneControl> {
    controls
        .iter()
        .filter(|c| lanes.iter().any(|l| l.name == c.lane))
        .filter(|c| applied.get(&c.lane).is_none_or(|v| c.version > *v))
        .collect()
}

impl Actor for Heartbeat {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        self.beat(ctx);
        ctx.run_interval(self.interval, |act, ctx| act.beat(ctx));
    }
}

impl Handler<StopHeartbeat> for Heartbeat {
    type Result = ResponseActFuture<Self, ()>;

    fn handle(&mut self, _: StopHeartbeat, _: &mut Context<Self>) -> Self::Result {
        let store = self.store.clone();
        let worker_id = self.worker_id.clone();
        Box::pin(
            async move {
                let _ = store.engine_stopped(&worker_id).await;
            }
            .into_actor(self)
            .map(|_, _, ctx| ctx.stop()),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lane(name: &str) -> LaneNow {
        LaneNow {
            name: name.into(),
            lo: 0,
            hi: 9,
            slots: 1,
            running: 0,
            paused: false,
        }
    }

    fn control(lane: &str, version: i64) -> LaneControl {
        LaneControl {
            lane: lane.into(),
            paused: true,
            concurrency: None,
            version,
        }
    }

    #[test]
    fn only_newer_controls_of_own_lanes_are_applied() {
        let controls = [control("a", 3), control("b", 5), control("other", 9)];
        let lanes = [lane("a"), lane("b")];
        let mut applied = HashMap::new();
        let first: Vec<_> = to_apply(&controls, &applied, &lanes)
            .iter()
            .map(|c| c.version)
            .collect();
        assert_eq!(
            first,
            vec![3, 5],
            "a new engine applies every control of its lanes"
        );
        applied.insert("a".to_string(), 3);
        applied.insert("b".to_string(), 4);
        let next: Vec<_> = to_apply(&controls, &applied, &lanes)
            .iter()
            .map(|c| c.version)
            .collect();
        assert_eq!(next, vec![5]);
    }
}

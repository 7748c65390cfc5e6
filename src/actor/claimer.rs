//! The Claimer: one per lane, it owns the lane's claim request and the claim's round
//! trip to the database, and reports what it brought back to the supervisor.
//!
//! Invariant: a claim never asks for more jobs than the lane has free slots, plus, for a
//! lane that opted in to prefetch, the room it has for held jobs (the dispatch core sets
//! the limit); the lane's range caps how little urgent a job it takes. No prefetch by
//! default: a prefetched batch is what makes another process's urgent jobs wait.

use std::sync::Arc;
use std::time::Duration;

use actix::prelude::*;

use crate::actor::supervisor::inbox::ClaimReturned;
use crate::actor::LogLimiter;
use crate::dispatch::{ClaimOrder, LaneId};
use crate::lane::LaneSpec;
use crate::store::{ClaimRequest, Store};
use crate::telemetry::metrics::ClaimMetrics;

/// Claim up to `limit` jobs no more urgent than `floor`, under lease token `token`.
#[derive(Message, Debug, Clone, Copy)]
#[rtype(result = "()")]
pub(crate) struct Claim {
    pub(crate) limit: u32,
    pub(crate) floor: i16,
    pub(crate) token: i64,
}

impl From<ClaimOrder> for Claim {
    fn from(o: ClaimOrder) -> Self {
        Claim {
            limit: o.limit,
            floor: o.floor,
            token: o.token,
        }
    }
}

/// What every claim of this engine shares: its queue, the kinds it runs, the lease, and
/// the worker id written on claimed jobs.
#[derive(Debug, Clone)]
pub(crate) struct ClaimBase {
    pub(crate) queue: String,
    pub(crate) kinds: Vec<String>,
    pub(crate) lease_ms: f64,
    pub(crate) worker_id: String,
}

pub(crate) struct Claimer {
    store: Store,
    lane: LaneId,
    name: Arc<str>,
    /// The lane's claim request. Its fixed part (the lane's ceiling, queue, kinds, lease,
    /// worker id) is set here once; `limit`, `floor` and `token` are written from each
    /// `Claim` just before it is sent. Behind an `Arc` so the round trip shares it
    /// instead of copying the kind list: one claim per lane is in flight at a time, so
    /// the next claim finds the `Arc` unshared and `make_mut` copies nothing.
    request: Arc<ClaimRequest>,
    reply: Recipient<ClaimReturned>,
    log: LogLimiter,
    metrics: ClaimMetrics,
}

impl Claimer {
    pub(crate) fn new(
        store: Store,
        lane: LaneId,
        spec: &LaneSpec,
        base: ClaimBase,
        metrics: ClaimMetrics,
        reply: Recipient<ClaimReturned>,
    ) -> Self {
        let request = ClaimRequest {
            floor: spec.lo,
            ceiling: spec.hi,
            queue: base.queue,
            kinds: base.kinds,
            limit: 0,
            token: 0,
            lease_ms: base.lease_ms,
            worker_id: base.worker_id,
        };
        Claimer {
            store,
            lane,
            name: spec.name.clone(),
            request: Arc::new(request),
            reply,
            log: LogLimiter::new(Duration::from_secs(5)),
            metrics,
        }
    }
}

impl Actor for Claimer {
    type Context = Context<Self>;
}

impl Handler<Claim> for Claimer {
    type Result = ();

    fn handle(&mut self, msg: Claim, ctx: &mut Context<Self>) {
        let req = Arc::make_mut(&mut self.request);
        req.limit = msg.limit;
        req.floor = msg.floor;
        req.token = msg.token;
        let req = self.request.clone();
        let store = self.store.clone();
        async move {
            let sent = std::time::Instant::now();
            let result = store.claim(&req).await;
            let took = sent.elapsed();
            // Unshare the request before the supervisor can order the next claim.
            drop(req);
            (result, took)
        }
        .into_actor(self)
        .map(move |(result, took), act, _| {
            if let Ok(jobs) = &result {
                act.metrics.claimed(took, jobs.len());
            }
            if let Err(e) = &result {
                if let Some(suppressed) = act.log.allow() {
                    tracing::warn!(lane = %act.name, error = %e, suppressed,
                        "claim failed; retrying at the next poll");
                }
            }
            act.reply.do_send(ClaimReturned {
                lane: act.lane,
                token: msg.token,
                result,
                took,
            });
        })
        .spawn(ctx);
    }
}

//! The Claimer: one per lane, it takes jobs from the table for the supervisor.
//!
//! Invariant: a claim never asks for more jobs than the lane has free slots (the
//! supervisor passes exactly that as the limit). No local prefetch: a prefetched batch is
//! what makes another process's urgent jobs wait.

use actix::prelude::*;

use crate::error::Result;
use crate::store::{ClaimRequest, ClaimedJob, Store};

/// Claim up to `limit` jobs under the lease token `token`.
pub(crate) struct Claim {
    pub(crate) limit: u32,
    /// The most urgent priority to take (see `lane::borrow_floor`).
    pub(crate) floor: i16,
    pub(crate) token: i64,
}

impl Message for Claim {
    type Result = Result<Vec<ClaimedJob>>;
}

pub(crate) struct Claimer {
    store: Store,
    /// The lane's fixed part of every request (range, queue, kinds, lease, worker).
    template: ClaimRequest,
}

impl Claimer {
    pub(crate) fn new(store: Store, template: ClaimRequest) -> Self {
        Claimer { store, template }
    }
}

impl Actor for Claimer {
    type Context = Context<Self>;
}

impl Handler<Claim> for Claimer {
    type Result = ResponseFuture<Result<Vec<ClaimedJob>>>;

    fn handle(&mut self, msg: Claim, _: &mut Context<Self>) -> Self::Result {
        let store = self.store.clone();
        let req = ClaimRequest {
            limit: msg.limit,
            token: msg.token,
            floor: msg.floor,
            ..self.template.clone()
        };
        Box::pin(async move { store.claim(&req).await })
    }
}

//! Running out of server connections (`max_connections`, SQLSTATE 53300; or any class
//! 53 resource) degrades an engine instead of stalling it.
//!
//! It is not a topology change: nothing is retired and the breaker stays closed. Each
//! pool's manager reports refusals to its [`Shortage`], which
//! - paces the pool's next attempts (100 ms doubling to 2 s): each refused attempt
//!   costs the server a process start;
//! - holds the pool at one connection while the shortage lasts (10 s after the latest
//!   refusal, or after the server was last seen full by a maintenance pass): callers
//!   take turns on it, and the slot goes to an engine that has none.
//!
//! The store reacts for the engine as a whole: it closes idle spare connections (one
//! per pool stays), the listener gives its connection up and the lanes poll, and
//! claims stop while handlers' connections are refused and none is held, so an engine
//! never takes jobs it cannot run. A fleet of engines sharing too few connections thus
//! settles at one engine connection and one handler connection each, when they fit.

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use futures_util::FutureExt;
use tokio::sync::watch;

use super::{Manager, Store};
use crate::backoff::Backoff;
use crate::error::{Error, Result};

/// How long after a refusal (or after the server was seen full) an engine counts as
/// short of connections.
pub(crate) const SHORT_OF_CONNECTIONS: Duration = Duration::from_secs(10);

/// How long a handler waits for a connection from its pool (at least the connect
/// timeout): under a connection limit, waiting for a slot to free beats failing the
/// attempt.
pub(crate) const HANDLER_CONNECTION_WAIT: Duration = Duration::from_secs(30);

/// How often a pool held at one connection checks whether the shortage is over.
const HOLD_AT_ONE_RECHECK: Duration = Duration::from_millis(250);

/// How long a claim waits for a handler connection once handlers' connections have been
/// refused (see [`Store::handlers_can_connect`]).
const HANDLER_PROBE_WAIT: Duration = Duration::from_millis(200);

/// Pacing of connection attempts after the server refused one for lack of resources.
const REFUSED_BACKOFF: Backoff = Backoff {
    base: Duration::from_millis(100),
    max: Duration::from_secs(2),
    jitter: 0.3,
};

type Reaction = Box<dyn Fn() + Send + Sync>;

#[derive(Debug, Default)]
struct State {
    /// Refusals since the last connection that succeeded.
    refusals: u32,
    /// No attempt before this (pacing).
    not_before: Option<Instant>,
    /// The latest refusal, or when the server was last seen full (kept after a
    /// success).
    last: Option<Instant>,
}

/// One pool's view of running out of connections. Cheap to clone (shared state).
#[derive(Clone, Default)]
pub(crate) struct Shortage {
    state: Arc<Mutex<State>>,
    /// Bumped on every refusal and every sighting of a full server.
    changed: Arc<watch::Sender<u64>>,
    /// What the store does when this pool is refused (set once, by the store).
    reaction: Arc<OnceLock<Reaction>>,
}

impl Shortage {
    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Waits before a connection attempt: out the pacing after refusals, and for as
    /// long as the shortage lasts if the pool already has a connection (`live`). bb8
    /// counts the waiting attempt as pending and starts no other meanwhile, while the
    /// pool's connection serves its callers in turn.
    pub(crate) async fn before_connect(&self, live: &AtomicU32) {
        while let Some(d) = self.wait_before_connect(Instant::now(), live.load(Ordering::Acquire)) {
            tokio::time::sleep(d).await;
        }
    }

    /// How long an attempt must still wait at `now`, with `live` connections open.
    fn wait_before_connect(&self, now: Instant, live: u32) -> Option<Duration> {
        let s = self.state();
        if let Some(t) = s.not_before.filter(|t| *t > now) {
            return Some(t - now);
        }
        let short = s.last.is_some_and(|t| now < t + SHORT_OF_CONNECTIONS);
        (short && live > 0).then_some(HOLD_AT_ONE_RECHECK)
    }

    /// An attempt succeeded: no more pacing.
    pub(crate) fn connected(&self) {
        let mut s = self.state();
        s.refusals = 0;
        s.not_before = None;
    }

    /// An attempt was refused for lack of resources.
    pub(crate) fn refused(&self) {
        {
            let mut s = self.state();
            let now = Instant::now();
            s.refusals = s.refusals.saturating_add(1);
            s.not_before = Some(now + REFUSED_BACKOFF.delay(s.refusals));
            s.last = Some(now);
        }
        self.changed.send_modify(|n| *n += 1);
        if let Some(react) = self.reaction.get() {
            react();
        }
    }

    /// The server was seen with no slot left, though no attempt of ours was refused.
    fn saw_server_full(&self) {
        self.state().last = Some(Instant::now());
        self.changed.send_modify(|n| *n += 1);
    }

    /// Refused, and nothing connected since.
    fn outstanding(&self) -> bool {
        self.state().refusals > 0
    }

    /// Refused, or the server seen full, within [`SHORT_OF_CONNECTIONS`].
    fn recent(&self) -> bool {
        self.state()
            .last
            .is_some_and(|t| t.elapsed() < SHORT_OF_CONNECTIONS)
    }
}

/// Makes every refusal of `managers`' attempts run the store's reaction at once: shed
/// idle spares and tell the listener (see [`Store::shortages`]). A lane whose slots all
/// wait for a handler connection does not claim, so waiting for its next claim to react
/// would leave the whole fleet waiting. The reaction holds the store weakly.
pub(crate) fn react_to_refusals(store: &Store, managers: &[&Manager]) {
    for m in managers {
        let weak = Arc::downgrade(&store.inner);
        let engine = store.inner.shortage.clone();
        let is_engine = Arc::ptr_eq(&m.shortage().state, &engine.state);
        let _ = m.shortage().reaction.set(Box::new(move || {
            if !is_engine {
                // The listener watches the engine pool's shortage; tell it about the
                // handlers' pool being refused too.
                engine.changed.send_modify(|n| *n += 1);
            }
            if let Some(inner) = weak.upgrade() {
                Store { inner }.shed_idle_when_short();
            }
        }));
    }
}

impl Store {
    /// Changes whenever this engine's connections are refused for lack of resources or
    /// the server is seen full: the listener then gives its connection up.
    pub(crate) fn shortages(&self) -> watch::Receiver<u64> {
        self.inner.shortage.changed.subscribe()
    }

    /// Whether this engine is short of connections: one of its pools was refused, or
    /// the server was seen full, within the last [`SHORT_OF_CONNECTIONS`]. A connection
    /// that runs claims, outcomes or handlers is then worth more than the listener's
    /// faster wake-ups.
    pub(crate) fn short_of_connections(&self) -> bool {
        self.inner.shortage.recent()
            || self
                .inner
                .app_shortage
                .as_ref()
                .is_some_and(Shortage::recent)
    }

    /// Notes that the server was seen with every slot taken (`server_connections.sql`,
    /// run by each engine's maintenance pass): an engine holding idle spares is never
    /// refused itself, so only the server can tell it that others starve.
    pub(crate) fn note_server_full(&self) {
        self.inner.shortage.saw_server_full();
        self.shed_idle_when_short();
    }

    /// While short of connections, closes idle pooled connections beyond one per pool.
    /// An engine that polls, maintains and renews keeps two or three warm for ever
    /// (pools hand out the most recently used first, but its tasks overlap); under a
    /// limit those idle spares starve the rest of the fleet: measured, 20 engines held
    /// 45 idle engine connections of 50 while 17 of them had no handler connection.
    pub(crate) fn shed_idle_when_short(&self) {
        if !self.short_of_connections() {
            return;
        }
        for pool in std::iter::once(&self.inner.pool).chain(self.inner.app_pool.as_ref()) {
            let state = pool.state();
            let surplus = state
                .connections
                .saturating_sub(1)
                .min(state.idle_connections);
            for _ in 0..surplus {
                // Only an idle connection, taken at once: waiting would open a new one.
                if pool.state().idle_connections == 0 {
                    break;
                }
                match pool.get().now_or_never() {
                    Some(Ok(mut conn)) => conn.set_suspect(true),
                    _ => break,
                }
            }
        }
    }

    /// Succeeds when handlers can get a database connection, or may well: always,
    /// unless the handlers' pool holds no connection and its latest attempt to open one
    /// was refused for lack of resources. Then it makes one paced attempt, waiting
    /// briefly, and fails with [`Error::Exhausted`] if no connection comes: jobs
    /// claimed now would wait for a connection under their leases while an engine that
    /// has one could run them. Handlers that never use the pool never trigger this.
    pub(crate) async fn handlers_can_connect(&self) -> Result<()> {
        let Some((pool, shortage)) = self
            .inner
            .app_pool
            .as_ref()
            .zip(self.inner.app_shortage.as_ref())
        else {
            return Ok(());
        };
        if !shortage.outstanding() || pool.state().connections > 0 {
            return Ok(());
        }
        match tokio::time::timeout(HANDLER_PROBE_WAIT, pool.get()).await {
            // Back in the pool, idle, for the handlers of the claim that follows.
            Ok(Ok(conn)) => {
                drop(conn);
                Ok(())
            }
            _ => Err(Error::Exhausted(
                "no connection free for handlers; not claiming until one is".into(),
            )),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refusals_pace_then_hold_the_pool_at_one_while_the_shortage_lasts() {
        let s = Shortage::default();
        let t0 = Instant::now();
        assert!(!s.recent() && !s.outstanding());
        assert_eq!(s.wait_before_connect(t0, 0), None);
        s.refused();
        assert!(s.recent() && s.outstanding());
        // Paced: the first retry waits the backoff (100 ms ±30%), connection or not.
        let wait = s.wait_before_connect(Instant::now(), 0).expect("paced");
        assert!(wait > Duration::from_millis(60) && wait <= Duration::from_millis(130));
        let later = Instant::now() + Duration::from_millis(200);
        assert_eq!(s.wait_before_connect(later, 0), None, "no connection: go");
        assert_eq!(
            s.wait_before_connect(later, 1),
            Some(HOLD_AT_ONE_RECHECK),
            "one open: hold"
        );
        s.connected();
        assert!(
            !s.outstanding() && s.recent(),
            "a success ends the pacing only"
        );
        let over = Instant::now() + SHORT_OF_CONNECTIONS;
        assert_eq!(s.wait_before_connect(over, 1), None, "shortage over: grow");
    }

    #[test]
    fn a_full_server_holds_without_pacing() {
        let s = Shortage::default();
        let changes = s.changed.subscribe();
        s.saw_server_full();
        assert!(s.recent() && !s.outstanding());
        assert!(changes.has_changed().unwrap());
        let now = Instant::now();
        assert_eq!(s.wait_before_connect(now, 0), None);
        assert_eq!(s.wait_before_connect(now, 1), Some(HOLD_AT_ONE_RECHECK));
    }

    #[test]
    fn a_refusal_runs_the_reaction() {
        let s = Shortage::default();
        let ran = Arc::new(AtomicU32::new(0));
        let r = ran.clone();
        let _ = s.reaction.set(Box::new(move || {
            r.fetch_add(1, Ordering::Relaxed);
        }));
        s.refused();
        s.refused();
        assert_eq!(ran.load(Ordering::Relaxed), 2);
    }
}

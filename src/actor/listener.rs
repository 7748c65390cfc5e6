//! The Listener: a dedicated connection that LISTENs on the schema's channel and turns
//! notifications into `JobsAvailable` hints for the supervisor (through a `Recipient`).
//!
//! bb8 cannot deliver notifications (it drives its connections itself and drops async
//! messages), so the listener owns a plain tokio-postgres connection and reads
//! `Connection::poll_message`. A notification is only a hint: the table is the truth,
//! lanes also poll, and every (re)connect is followed by a catch-up claim, so a
//! notification lost while the listener was down costs at most one poll interval.
//!
//! The connection is health-checked on an interval: a query under a timeout that also
//! reads `pg_is_in_recovery()`, `transaction_read_only` and `pg_listening_channels()`,
//! then an end-to-end self-notification sent through the pool that must come back on
//! this connection. A connection that survived a failover onto a read-only server, that
//! silently lost its subscription, or that listens on a different server than the pool
//! writes to, fails the check and is replaced. When the store retires its pool after a
//! topology change, the listener reconnects too.

use std::sync::Arc;
use std::time::{Duration, Instant};

use actix::prelude::*;
use futures_util::StreamExt;
use tokio_postgres::{AsyncMessage, Client};

use crate::actor::supervisor::inbox::{CancelRequested, JobsAvailable, ListenerChanged};
use crate::actor::LogLimiter;
use crate::config::Settings;
use crate::dispatch::RunKey;
use crate::store::Store;

/// At most one hint without a priority is forwarded per this interval.
const BARE_HINT_INTERVAL: Duration = Duration::from_millis(50);

/// Where the listener reports: notifications, and its connection going up or down.
pub(crate) struct ListenerReports {
    pub(crate) available: Recipient<JobsAvailable>,
    pub(crate) changed: Recipient<ListenerChanged>,
    /// A user asked to cancel a run (a `cancel:<id>:<token>` notification).
    pub(crate) cancel: Recipient<CancelRequested>,
}

/// From the connection pump: a notification, or the end of the connection.
#[derive(Message)]
#[rtype(result = "()")]
enum Pumped {
    Notification { epoch: u64, payload: String },
    Closed { epoch: u64, reason: String },
}

/// Stop listening and stop the actor.
#[derive(Message)]
#[rtype(result = "()")]
pub(crate) struct StopListener;

/// The pool was retired (topology change): reconnect.
#[derive(Message)]
#[rtype(result = "()")]
struct Recycle;

/// Prefix of the listener's own health-check notifications.
const PING_PREFIX: &str = "pglane-ping:";

pub(crate) struct Listener {
    pg: crate::connect::Connector,
    store: Store,
    /// Nonce and send time of the self-notification awaited, if any.
    ping: Option<(u64, Instant)>,
    channel: String,
    settings: Arc<Settings>,
    reports: ListenerReports,
    client: Option<Arc<Client>>,
    /// Increases with every connection, so messages about an old one are ignored.
    epoch: u64,
    connecting: bool,
    failures: u32,
    checking: bool,
    log: LogLimiter,
    garbage_log: LogLimiter,
    last_bare_hint: Option<Instant>,
    stopping: bool,
}

impl Listener {
    pub(crate) fn new(
        pg: crate::connect::Connector,
        store: Store,
        channel: String,
        settings: Arc<Settings>,
        reports: ListenerReports,
    ) -> Self {
        Listener {
            pg,
            store,
            ping: None,
            channel,
            settings,
            reports,
            client: None,
            epoch: 0,
            connecting: false,
            failures: 0,
            checking: false,
            log: LogLimiter::new(Duration::from_secs(10)),
            garbage_log: LogLimiter::new(Duration::from_secs(10)),
            last_bare_hint: None,
            stopping: false,
        }
    }

    fn connect(&mut self, ctx: &mut Context<Self>) {
        if self.connecting || self.stopping || self.client.is_some() {
            return;
        }
        if self.store.is_down() {
            // The database is known to be unavailable and the store probes it once per
            // interval for the whole engine; connecting now would only be a second probe.
            let delay = self.settings.reconnect_backoff.delay(self.failures.max(1));
            ctx.run_later(delay, |act, ctx| act.connect(ctx));
            return;
        }
        if self.store.short_of_connections() {
            // The server is out of connections: leave the slot to claims, outcomes and
            // handlers; the lanes poll meanwhile.
            let delay = self.settings.reconnect_backoff.max;
            ctx.run_later(delay, |act, ctx| act.connect(ctx));
            return;
        }
        self.connecting = true;
        self.epoch += 1;
        let epoch = self.epoch;
        let pg = self.pg.clone();
        let me = ctx.address();
        let channel = self.channel.clone();
        let timeout = self.settings.connect_timeout + self.settings.call_timeout;
        let work = async move {
            let (client, mut connection) = pg.connect().await.map_err(|e| e.to_string())?;
            // The pump drives the connection: it must run before any query can complete.
            actix_rt::spawn(async move {
                let mut messages =
                    futures_util::stream::poll_fn(move |cx| connection.poll_message(cx));
                let reason = loop {
                    match messages.next().await {
                        Some(Ok(AsyncMessage::Notification(n))) => {
                            me.do_send(Pumped::Notification {
                                epoch,
                                payload: n.payload().to_string(),
                            })
                        }
                        Some(Ok(_)) => {}
                        Some(Err(e)) => break e.to_string(),
                        None => break "connection closed".to_string(),
                    }
                };
                me.do_send(Pumped::Closed { epoch, reason });
            });
            crate::store::listen::listen(&client, &channel)
                .await
                .map_err(|e| e.to_string())?;
            Ok::<_, String>(client)
        };
        async move {
            match tokio::time::timeout(timeout, work).await {
                Ok(r) => r,
                Err(_) => Err(format!("connecting took longer than {timeout:?}")),
            }
        }
        .into_actor(self)
        .map(move |result, act, ctx| {
            act.connecting = false;
            if act.epoch != epoch || act.stopping {
                return;
            }
            match result {
                Ok(client) => {
                    act.client = Some(Arc::new(client));
                    act.failures = 0;
                    tracing::info!(
                        channel = %act.channel,
                        server = act.pg.target(),
                        sslmode = act.pg.mode().as_str(),
                        "listener connected"
                    );
                    act.reports.changed.do_send(ListenerChanged {
                        up: true,
                        error: None,
                    });
                }
                Err(e) => act.lost(ctx, e),
            }
        })
        .spawn(ctx);
    }

    /// The connection is gone or unfit: report it and reconnect after a backoff.
    fn lost(&mut self, ctx: &mut Context<Self>, reason: String) {
        self.client = None;
        self.ping = None;
        self.epoch += 1;
        if self.stopping {
            return;
        }
        self.failures += 1;
        if let Some(suppressed) = self.log.allow() {
            tracing::warn!(reason = %reason, suppressed, "listener down; lanes poll until it is back");
        }
        self.reports.changed.do_send(ListenerChanged {
            up: false,
            error: Some(reason),
        });
        let delay = self.settings.reconnect_backoff.delay(self.failures);
        ctx.run_later(delay, |act, ctx| act.connect(ctx));
    }

    fn check_health(&mut self, ctx: &mut Context<Self>) {
        let Some(client) = self.client.clone() else {
            return;
        };
        if self.checking {
            return;
        }
        self.checking = true;
        let epoch = self.epoch;
        let channel = self.channel.clone();
        let timeout = self.settings.call_timeout;
        async move {
            let query = crate::store::listen::listener_health(&client, &channel);
            match tokio::time::timeout(timeout, query).await {
                Err(_) => Err(format!("health check took longer than {timeout:?}")),
                Ok(Err(e)) => Err(format!("health check failed: {e}")),
                Ok(Ok(health)) => {
                    let (recovery, read_only, listening) =
                        (health.in_recovery, health.read_only, health.listening);
                    if recovery || read_only {
                        Err("server is not writable (in recovery or read-only)".to_string())
                    } else if !listening {
                        Err(format!("subscription to {channel} was lost"))
                    } else {
                        Ok(())
                    }
                }
            }
        }
        .into_actor(self)
        .map(move |result, act, ctx| {
            act.checking = false;
            if act.epoch != epoch {
                return;
            }
            match result {
                Err(reason) => act.lost(ctx, reason),
                Ok(()) => match act.ping {
                    None => act.send_ping(ctx),
                    // The last self-notification never came back: this connection no
                    // longer hears what the pool sends (e.g. it listens on another
                    // server than the one the pool writes to).
                    Some((_, sent)) if sent.elapsed() > act.settings.call_timeout => {
                        let waited = sent.elapsed();
                        act.lost(
                            ctx,
                            format!("self-notification not received after {waited:?}"),
                        )
                    }
                    Some(_) => {}
                },
            }
        })
        .spawn(ctx);
    }

    /// Sends a notification through the pool that must arrive on this connection.
    fn send_ping(&mut self, ctx: &mut Context<Self>) {
        let nonce = fastrand::u64(..);
        // Expect it before sending: it can arrive before the send's reply.
        self.ping = Some((nonce, Instant::now()));
        let store = self.store.clone();
        let epoch = self.epoch;
        async move { store.notify(&format!("{PING_PREFIX}{nonce}")).await }
            .into_actor(self)
            .map(move |sent, act, _| {
                // If the pool could not send it, the database is the problem, not this
                // connection: the store's breaker handles that.
                if sent.is_err() && act.epoch == epoch && act.ping.is_some_and(|(n, _)| n == nonce)
                {
                    act.ping = None;
                }
            })
            .spawn(ctx);
    }
}

impl Actor for Listener {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        let mut recycled = self.store.recycled();
        let me = ctx.address();
        actix_rt::spawn(async move {
            while recycled.changed().await.is_ok() {
                if me.try_send(Recycle).is_err() && !me.connected() {
                    break;
                }
            }
        });
        let mut short = self.store.shortages();
        let me = ctx.address();
        actix_rt::spawn(async move {
            while short.changed().await.is_ok() {
                if me.try_send(ShortOfConnections).is_err() && !me.connected() {
                    break;
                }
            }
        });
        self.connect(ctx);
        ctx.run_interval(self.settings.listener_health_interval, |act, ctx| {
            act.check_health(ctx)
        });
    }
}

impl Handler<Pumped> for Listener {
    type Result = ();

    fn handle(&mut self, msg: Pumped, ctx: &mut Context<Self>) {
        match msg {
            Pumped::Notification { epoch, payload }
                if epoch == self.epoch && payload.starts_with(PING_PREFIX) =>
            {
                let nonce = payload[PING_PREFIX.len()..].parse::<u64>().ok();
                if nonce.is_some() && self.ping.map(|(n, _)| n) == nonce {
                    self.ping = None;
                }
            }
            Pumped::Notification { epoch, payload }
                if epoch == self.epoch && crate::cancel::is_notice(&payload) =>
            {
                if let Some((job, token)) = crate::cancel::parse_notice(&payload) {
                    let key = RunKey { job, token };
                    self.reports.cancel.do_send(CancelRequested(vec![key]));
                }
            }
            Pumped::Notification { epoch, payload } if epoch == self.epoch => {
                // Anyone who can connect can NOTIFY on our channel: treat the payload as
                // a hint at most, and never trust it beyond parsing a priority.
                let priority = payload.trim().parse::<i16>().ok().filter(|p| *p >= 0);
                if priority.is_none() {
                    if let Some(suppressed) = self.garbage_log.allow() {
                        tracing::debug!(
                            suppressed,
                            "unparseable notification payload; treating it as a bare hint"
                        );
                    }
                    // A flood of junk must not turn into a flood of claims.
                    if self
                        .last_bare_hint
                        .is_some_and(|t| t.elapsed() < BARE_HINT_INTERVAL)
                    {
                        return;
                    }
                    self.last_bare_hint = Some(Instant::now());
                }
                self.reports.available.do_send(JobsAvailable { priority });
            }
            Pumped::Closed { epoch, reason } if epoch == self.epoch => self.lost(ctx, reason),
            _ => {}
        }
    }
}

impl Handler<Recycle> for Listener {
    type Result = ();

    fn handle(&mut self, _: Recycle, ctx: &mut Context<Self>) {
        if self.client.is_some() {
            self.lost(ctx, "the pool was retired after a topology change".into());
        }
    }
}

/// The engine's connections are being refused (or the server is full).
#[derive(Message)]
#[rtype(result = "()")]
struct ShortOfConnections;

impl Handler<ShortOfConnections> for Listener {
    type Result = ();

    /// Gives the listener's connection up while the engine is short of connections: a
    /// connection that runs claims, outcomes or handlers is worth more than faster
    /// wake-ups, and the lanes poll meanwhile. `connect` waits until the shortage ends.
    fn handle(&mut self, _: ShortOfConnections, ctx: &mut Context<Self>) {
        if self.client.is_some() && self.store.short_of_connections() {
            let reason = "the server is out of connections: listener closed, polling";
            self.lost(ctx, reason.into());
        }
    }
}

/// Test hook for the fault-injection suite: runs `UNLISTEN *` on the listener's own
/// session without telling the listener, the way a connection pooler swapping server
/// sessions or a stray `DISCARD ALL` loses a subscription silently. No other session can
/// do that to it, hence the hook. Answers whether there was a connection to do it on.
#[derive(Message)]
#[rtype(result = "bool")]
pub(crate) struct DropSubscription;

impl Handler<DropSubscription> for Listener {
    type Result = ResponseFuture<bool>;

    fn handle(&mut self, _: DropSubscription, _: &mut Context<Self>) -> Self::Result {
        let client = self.client.clone();
        Box::pin(async move {
            match client {
                Some(c) => crate::store::listen::unlisten_all(&c).await.is_ok(),
                None => false,
            }
        })
    }
}

impl Handler<StopListener> for Listener {
    type Result = ();

    fn handle(&mut self, _: StopListener, ctx: &mut Context<Self>) {
        self.stopping = true;
        self.client = None;
        self.epoch += 1;
        ctx.stop();
    }
}

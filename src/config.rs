//! Engine settings, their defaults, and their validation (in one place).

use std::time::Duration;

use crate::backoff::Backoff;
use crate::connect::ConnectOptions;
use crate::error::{Error, Result};

/// Anything that names a PostgreSQL database: a URL or key-value string (with libpq's
/// TLS parameters, see [`ConnectOptions`]), a [`ConnectOptions`], or a
/// [`tokio_postgres::Config`]. Multi-host strings and `target_session_attrs=read-write`
/// are honoured on every (re)connect.
pub trait IntoPgConfig {
    /// Parses or converts into connection settings; a bad string is
    /// [`Error::InvalidDatabaseUrl`] saying what is wrong.
    fn into_pg_config(self) -> Result<ConnectOptions>;
}

impl IntoPgConfig for ConnectOptions {
    fn into_pg_config(self) -> Result<ConnectOptions> {
        Ok(self)
    }
}

impl IntoPgConfig for tokio_postgres::Config {
    fn into_pg_config(self) -> Result<ConnectOptions> {
        Ok(self.into())
    }
}

impl IntoPgConfig for &str {
    fn into_pg_config(self) -> Result<ConnectOptions> {
        self.parse()
    }
}

impl IntoPgConfig for String {
    fn into_pg_config(self) -> Result<ConnectOptions> {
        self.as_str().into_pg_config()
    }
}

impl IntoPgConfig for &String {
    fn into_pg_config(self) -> Result<ConnectOptions> {
        self.as_str().into_pg_config()
    }
}

/// Tunables of a running engine. Built by [`EngineBuilder`](crate::EngineBuilder); each
/// setter there documents its default.
#[derive(Debug, Clone)]
pub(crate) struct Settings {
    pub(crate) schema: String,
    pub(crate) queue: String,
    pub(crate) pool_size: u32,
    pub(crate) lease: Duration,
    pub(crate) job_timeout: Duration,
    pub(crate) cancel_grace: Duration,
    pub(crate) poll_interval: Duration,
    pub(crate) poll_interval_without_listener: Duration,
    pub(crate) call_timeout: Duration,
    pub(crate) connect_timeout: Duration,
    pub(crate) shutdown_grace: Duration,
    pub(crate) retry_backoff: Backoff,
    pub(crate) reconnect_backoff: Backoff,
    pub(crate) maintenance_interval: Duration,
    pub(crate) max_rescues: i32,
    pub(crate) completed_retention: Duration,
    pub(crate) failed_retention: Duration,
    pub(crate) listener_health_interval: Duration,
    pub(crate) metrics_interval: Duration,
    pub(crate) handler_threads: usize,
    pub(crate) max_stuck_threads: usize,
    pub(crate) worker_id: Option<String>,
    pub(crate) allow_priority_gaps: bool,
    pub(crate) skip_notify_when_backlogged: bool,
    pub(crate) heartbeat_interval: Duration,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            schema: "pglane".into(),
            queue: crate::enqueue::DEFAULT_QUEUE.into(),
            pool_size: 10,
            lease: Duration::from_secs(30),
            job_timeout: Duration::from_secs(300),
            cancel_grace: Duration::from_secs(5),
            poll_interval: Duration::from_secs(1),
            poll_interval_without_listener: Duration::from_millis(250),
            call_timeout: Duration::from_secs(10),
            connect_timeout: Duration::from_secs(5),
            shutdown_grace: Duration::from_secs(30),
            retry_backoff: Backoff::RETRY,
            reconnect_backoff: Backoff {
                base: Duration::from_millis(100),
                max: Duration::from_secs(2),
                jitter: 0.3,
            },
            maintenance_interval: Duration::from_secs(5),
            max_rescues: 5,
            completed_retention: Duration::from_secs(24 * 3600),
            failed_retention: Duration::from_secs(7 * 24 * 3600),
            listener_health_interval: Duration::from_secs(5),
            metrics_interval: Duration::from_secs(5),
            handler_threads: std::thread::available_parallelism()
                .map(|n| n.get())
                .unwrap_or(2)
                .max(2),
            max_stuck_threads: DEFAULT_MAX_STUCK_THREADS,
            worker_id: None,
            allow_priority_gaps: false,
            skip_notify_when_backlogged: true,
            heartbeat_interval: Duration::from_secs(2),
        }
    }
}

impl Settings {
    /// Checks every setting; the message says which one and what to use instead.
    pub(crate) fn validate(&self) -> Result<()> {
        let bad = |msg: String| Err(Error::InvalidConfig(msg));
        // The schema name (and the channel derived from it) is checked by the builder
        // with `channel_for`, before the rest.
        crate::validate::identifier("queue", &self.queue)
            .map_err(|e| Error::InvalidConfig(e.to_string()))?;
        let positive = [
            ("lease", self.lease),
            ("job_timeout", self.job_timeout),
            ("cancel_grace", self.cancel_grace),
            ("poll_interval", self.poll_interval),
            (
                "poll_interval_without_listener",
                self.poll_interval_without_listener,
            ),
            ("call_timeout", self.call_timeout),
            ("connect_timeout", self.connect_timeout),
            ("maintenance_interval", self.maintenance_interval),
            ("listener_health_interval", self.listener_health_interval),
            ("metrics_interval", self.metrics_interval),
            ("heartbeat_interval", self.heartbeat_interval),
        ];
        for (name, d) in positive {
            if d.is_zero() {
                return bad(format!("{name} must be greater than zero"));
            }
        }
        if self.lease < Duration::from_millis(300) {
            return bad(format!(
                "lease {:?} is too short: use at least 300ms",
                self.lease
            ));
        }
        if self.call_timeout >= self.lease {
            return bad(format!(
                "call_timeout ({:?}) must be shorter than the lease ({:?}), or a slow renewal could lose every lease",
                self.call_timeout, self.lease
            ));
        }
        if self.job_timeout > crate::validate::MAX_JOB_TIMEOUT {
            return bad("job_timeout must be at most 24 hours".into());
        }
        if self.pool_size == 0 {
            return bad("pool_size must be at least 1".into());
        }
        if self.max_rescues < 1 {
            return bad("max_rescues must be at least 1".into());
        }
        if self.handler_threads == 0 {
            return bad("handler_threads must be at least 1".into());
        }
        if let Some(id) = &self.worker_id {
            if id.is_empty() || id.len() > 128 || id.contains('\0') {
                return bad("worker_id must be 1 to 128 bytes without NUL".into());
            }
        }
        Ok(())
    }

    /// How often running jobs' leases are renewed: a third of the lease, so two renewals
    /// can fail before a lease runs out.
    pub(crate) fn renew_interval(&self) -> Duration {
        self.lease / 3
    }

    /// How often the supervisor ticks (timeouts, stuck threads, renewals).
    pub(crate) fn tick_interval(&self) -> Duration {
        (self.job_timeout / 4)
            .min(self.renew_interval())
            .clamp(Duration::from_millis(20), Duration::from_millis(250))
    }
}

/// Stuck handler threads replaced at most at once, by default.
pub(crate) const DEFAULT_MAX_STUCK_THREADS: usize = 8;

/// A run past its timeout that a handler thread has been inside one poll of for this
/// long is stuck: a well-behaved poll takes microseconds.
pub(crate) const STUCK_POLL: Duration = Duration::from_millis(100);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_valid() {
        Settings::default().validate().unwrap();
    }

    #[test]
    fn bad_settings_are_rejected_with_the_setting_named() {
        let check = |f: fn(&mut Settings), needle: &str| {
            let mut s = Settings::default();
            f(&mut s);
            let msg = s.validate().unwrap_err().to_string();
            assert!(msg.contains(needle), "{msg:?} should mention {needle:?}");
        };
        check(|s| s.poll_interval = Duration::ZERO, "poll_interval");
        check(|s| s.queue = "a;b".into(), "queue");
        check(|s| s.call_timeout = Duration::from_secs(60), "call_timeout");
        check(|s| s.lease = Duration::from_millis(10), "lease");
        check(|s| s.pool_size = 0, "pool_size");
        check(|s| s.max_rescues = 0, "max_rescues");
    }

    #[test]
    fn urls_parse_or_fail_clearly() {
        assert!(
            "postgres://u@h1:5432,h2:5433/db?target_session_attrs=read-write"
                .into_pg_config()
                .is_ok()
        );
        let e = "postgres://u@h:notaport/db".into_pg_config().unwrap_err();
        assert!(matches!(e, Error::InvalidDatabaseUrl(_)), "{e}");
    }
}

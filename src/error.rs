//! The engine's error type.
//!
//! One enum for everything the engine can report to its caller. Handler outcomes are
//! a separate type, [`JobError`](crate::JobError), because a handler chooses between
//! retrying, cancelling and snoozing, while an engine caller only needs to know why a
//! call failed.

use std::time::Duration;

use crate::validate::Rejection;

/// Result type used throughout pglane.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Everything that can go wrong in a call to pglane.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The engine configuration is invalid; the message says what to change.
    #[error("invalid configuration: {0}")]
    InvalidConfig(String),

    /// The database URL or connection string cannot be used; the message says what is
    /// wrong (it never repeats the string, which may hold a password).
    #[error("invalid database URL: {0}")]
    InvalidDatabaseUrl(String),

    /// The TLS settings cannot be used: a certificate or key file is missing or
    /// unreadable, or no trusted certificates were found. The message names the file.
    #[error("TLS configuration: {0}")]
    Tls(String),

    /// Connecting to the server failed: refused, unreachable, TLS handshake (e.g. a
    /// certificate that does not name the host under `sslmode=verify-full`), or
    /// authentication. `target` is `host:port` (comma-separated for multi-host strings).
    #[error("could not connect to {target}: {reason}")]
    Connect {
        /// The server(s) tried, as `host:port`.
        target: String,
        /// What went wrong, with its causes.
        reason: String,
        /// tokio-postgres's error (its SQLSTATE, if the server answered).
        #[source]
        source: tokio_postgres::Error,
    },

    /// A job was rejected before anything was written (bad args, priority, schedule…).
    #[error("job rejected: {0}")]
    InvalidJob(#[from] Rejection),

    /// The schema has not been migrated to the version this build needs.
    #[error(
        "schema `{schema}` is at migration version {found}, this pglane needs {expected}: \
         run `pglane::migrate` (or `pglane migrate`) first"
    )]
    NotMigrated {
        /// The schema that was checked.
        schema: String,
        /// The version found in the schema (0 when the schema does not exist).
        found: i32,
        /// The version this build of pglane needs.
        expected: i32,
    },

    /// The schema has migrations newer than this pglane that older engines must not run
    /// against (each migration records the oldest engine it allows; see the README's
    /// "Deploying and upgrading"). Nothing was changed.
    #[error(
        "schema `{schema}` is at migration version {found} and needs a pglane built for \
         schema version {oldest_engine} or later; this one is for {supported}: upgrade pglane"
    )]
    SchemaTooNew {
        /// The schema that was checked.
        schema: String,
        /// The newest version found in the schema.
        found: i32,
        /// The oldest engine version its migrations allow.
        oldest_engine: i32,
        /// The version this build of pglane is for.
        supported: i32,
    },

    /// The database is not UTF-8 encoded; pglane needs UTF8 (on `SQL_ASCII`, a
    /// notification that is not valid UTF-8 makes PostgreSQL end the listener's
    /// connection). Reported by `migrate`; nothing was changed.
    #[error(
        "database `{database}` is encoded {encoding}; pglane needs a UTF8 database \
         (CREATE DATABASE … ENCODING 'UTF8' TEMPLATE template0)"
    )]
    UnsupportedEncoding {
        /// The database connected to.
        database: String,
        /// Its encoding, as `server_encoding` reports it.
        encoding: String,
    },

    /// An error reported by PostgreSQL or the connection to it.
    #[error("database error: {}", describe(.0))]
    Database(#[from] tokio_postgres::Error),

    /// No connection could be taken from the pool in time, or connecting failed.
    #[error("no database connection: {0}")]
    Pool(String),

    /// The server is out of a resource (SQLSTATE class 53: too many connections, out of
    /// memory, disk full), so no connection could be opened or the statement failed.
    /// Not an outage: the engine keeps its connections, backs off and retries.
    #[error("database out of resources: {0}")]
    Exhausted(String),

    /// The database is unavailable (down, read-only, or unreachable): the call was not
    /// sent. The engine probes it once per backoff interval and resumes by itself.
    #[error("database unavailable: {0}")]
    Unavailable(String),

    /// A database call did not finish within its timeout.
    #[error("database call timed out after {0:?}")]
    Timeout(Duration),

    /// A write could not be completed because of concurrent changes (e.g. a unique key
    /// taken and released repeatedly while enqueueing); retrying is safe.
    #[error("conflict: {0}")]
    Conflict(String),

    /// A schedule's cron expression could not be parsed; nothing was written.
    #[error("schedule `{schedule}`: invalid cron expression {expression:?}: {reason}")]
    InvalidCron {
        /// The schedule declaring it.
        schedule: String,
        /// The expression as given.
        expression: String,
        /// What the parser said.
        reason: String,
    },

    /// A schedule names a time zone that is not in the IANA database; nothing was
    /// written.
    #[error("schedule `{schedule}`: unknown time zone {zone:?} (use an IANA name such as `Europe/Paris`)")]
    UnknownTimeZone {
        /// The schedule declaring it.
        schedule: String,
        /// The zone as given.
        zone: String,
    },

    /// A cancel found nothing to cancel: the job already finished (completed, failed or
    /// cancelled), or there is no such job. Nothing was written.
    #[error("job {id} cannot be cancelled: {reason}")]
    NotCancellable {
        /// The job asked for.
        id: i64,
        /// Why, as the database said it (e.g. "job 42 is already completed: nothing to
        /// cancel", "no job 42").
        reason: String,
    },

    /// The named lane does not exist in this engine.
    #[error("unknown lane `{0}`")]
    UnknownLane(String),

    /// The engine is shutting down or has stopped; the request was not carried out.
    #[error("the engine is shutting down")]
    ShuttingDown,

    /// An actor's mailbox is closed (the engine has stopped).
    #[error("engine actor unavailable: {0}")]
    Mailbox(#[from] actix::MailboxError),
}

/// A tokio-postgres error with its causes: its own `Display` says only "db error" or
/// "error connecting to server", leaving out the server's message ("cannot execute
/// UPDATE in a read-only transaction", "database does not allow writes"), which is the
/// part operators need in logs and stats.
pub(crate) fn describe(e: &tokio_postgres::Error) -> String {
    let mut text = e.to_string();
    let mut cause = std::error::Error::source(e);
    while let Some(c) = cause {
        text.push_str(": ");
        text.push_str(&c.to_string());
        cause = c.source();
    }
    text
}

impl Error {
    /// The SQLSTATE code of a database error, if this is one.
    pub fn sqlstate(&self) -> Option<&str> {
        match self {
            Error::Database(e) | Error::Connect { source: e, .. } => e.code().map(|c| c.code()),
            _ => None,
        }
    }

    /// Whether the server is out of a resource (SQLSTATE class 53, e.g. 53300 "too many
    /// clients"): [`Error::Exhausted`], or a statement that failed with such a code.
    /// Not a topology change: nothing is retired; the engine backs off and retries.
    pub fn is_resource_exhaustion(&self) -> bool {
        match self {
            Error::Exhausted(_) => true,
            Error::Database(e) | Error::Connect { source: e, .. } => e
                .code()
                .is_some_and(|c| crate::sqlstate::is_exhaustion_sqlstate(c.code())),
            _ => false,
        }
    }

    /// Whether this error means the database cannot currently serve the engine
    /// (connection lost, server shutting down, read-only after a failover, timeout).
    /// Running out of connections is not one (see
    /// [`is_resource_exhaustion`](Self::is_resource_exhaustion)).
    ///
    /// Such errors never cost a job an attempt: the engine backs off and retries.
    pub fn is_topology_change(&self) -> bool {
        match self {
            Error::Database(e) | Error::Connect { source: e, .. } => {
                if let Some(code) = e.code() {
                    crate::sqlstate::is_topology_sqlstate(code.code())
                } else {
                    // No SQLSTATE: the connection itself failed (closed, reset, refused).
                    true
                }
            }
            Error::Pool(_) | Error::Timeout(_) | Error::Unavailable(_) => true,
            _ => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn running_out_of_connections_is_not_an_outage() {
        let e = Error::Exhausted("sorry, too many clients already".into());
        assert!(e.is_resource_exhaustion());
        assert!(
            !e.is_topology_change(),
            "a refusal must not retire connections"
        );
        let lost = Error::Pool("could not connect: connection refused".into());
        assert!(lost.is_topology_change() && !lost.is_resource_exhaustion());
        assert!(Error::UnsupportedEncoding {
            database: "d".into(),
            encoding: "SQL_ASCII".into()
        }
        .to_string()
        .contains("UTF8"));
    }

    #[test]
    fn database_errors_show_their_cause() {
        let e = "host=h port=notaport"
            .parse::<tokio_postgres::Config>()
            .unwrap_err();
        let text = Error::Database(e).to_string();
        assert!(
            text.starts_with("database error: invalid connection string: "),
            "{text}"
        );
        assert!(text.contains("port"), "{text}");
    }
}

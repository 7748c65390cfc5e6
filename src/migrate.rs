//! Embedded, ordered schema migrations, applied under an advisory lock.
//!
//! Two processes migrating at once is safe: the second waits for the first's lock, then
//! finds every version applied and does nothing. Starting an engine never migrates; it
//! checks the version and fails with [`Error::NotMigrated`] if it is behind.

use tokio_postgres::Client;

use crate::config::IntoPgConfig;
use crate::error::{Error, Result};
use crate::store::migration;
use crate::validate;

/// One migration: its version, name and SQL (with template markers).
struct Migration {
    version: i32,
    name: &'static str,
    sql: &'static str,
}

const MIGRATIONS: &[Migration] = &[
    Migration {
        version: 1,
        name: "jobs",
        sql: include_str!("../migrations/0001_jobs.sql"),
    },
    Migration {
        version: 2,
        name: "limits_and_vacuum",
        sql: include_str!("../migrations/0002_limits_and_vacuum.sql"),
    },
    // Version 3 is another branch's (lands separately); versions apply by number, so a
    // schema may see 4 before 3.
    Migration {
        version: 4,
        name: "schedules_and_aging",
        sql: include_str!("../migrations/0004_schedules_and_aging.sql"),
    },
    Migration {
        version: 6,
        name: "engines_and_lane_controls",
        sql: include_str!("../migrations/0006_engines_and_lane_controls.sql"),
    },
];

/// The schema version this build of pglane needs.
pub const SCHEMA_VERSION: i32 = 6;

/// The NOTIFY channel for a schema: `<schema>_jobs`, validated as an identifier (so a
/// schema name may have at most 58 bytes).
pub fn channel_for(schema: &str) -> Result<String> {
    validate::identifier("schema", schema).map_err(|e| Error::InvalidConfig(e.to_string()))?;
    let channel = format!("{schema}_jobs");
    validate::identifier("channel", &channel).map_err(|e| {
        Error::InvalidConfig(format!("{e} (the channel is the schema name plus `_jobs`)"))
    })?;
    Ok(channel)
}

/// Connects to the database and brings `schema` up to [`SCHEMA_VERSION`]. Returns the
/// versions applied by this call (empty when it was already up to date).
///
/// ```no_run
/// # async fn f() -> pglane::Result<()> {
/// pglane::migrate("postgres://postgres@127.0.0.1:5432/test", "pglane").await?;
/// # Ok(()) }
/// ```
pub async fn migrate(database: impl IntoPgConfig, schema: &str) -> Result<Vec<i32>> {
    let config = database.into_pg_config()?;
    let (mut client, connection) = crate::connect::Connector::new(&config)?.connect().await?;
    let driver = tokio::spawn(connection);
    let result = migrate_with(&mut client, schema).await;
    drop(client);
    let _ = driver.await;
    result
}

/// [`migrate`] on a connection you already have.
pub async fn migrate_with(client: &mut Client, schema: &str) -> Result<Vec<i32>> {
    let channel = channel_for(schema)?;
    crate::store::require_utf8(&*client).await?;
    let tx = client.transaction().await?;
    migration::lock(&tx, schema).await?;
    migration::create_record(&tx, schema).await?;
    let applied = migration::applied(&tx, schema).await?;
    if let Some(newest) = applied.iter().max().filter(|v| **v > SCHEMA_VERSION) {
        return Err(Error::InvalidConfig(format!(
            "schema `{schema}` is at version {newest}, newer than this pglane ({SCHEMA_VERSION}): upgrade pglane"
        )));
    }
    let mut done = Vec::new();
    for m in MIGRATIONS.iter().filter(|m| !applied.contains(&m.version)) {
        migration::apply(&tx, schema, &channel, m.version, m.name, m.sql).await?;
        tracing::info!(
            schema,
            version = m.version,
            name = m.name,
            "applied migration"
        );
        done.push(m.version);
    }
    tx.commit().await?;
    Ok(done)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn migrations_are_ordered_and_end_at_the_schema_version() {
        // Numbers are handed out to parallel work ahead of time, so a build may skip
        // some for a while: ordered, distinct, and the last is the schema version.
        for pair in MIGRATIONS.windows(2) {
            assert!(pair[0].version < pair[1].version);
        }
        assert_eq!(MIGRATIONS.last().map(|m| m.version), Some(SCHEMA_VERSION));
    }

    #[test]
    fn channels() {
        assert_eq!(channel_for("pglane").unwrap(), "pglane_jobs");
        assert!(channel_for(&"s".repeat(58)).is_ok());
        assert!(channel_for(&"s".repeat(59)).is_err());
        assert!(channel_for("Bad").is_err());
        assert!(channel_for("").is_err());
    }

    #[test]
    fn rendered_migrations_have_no_markers_left() {
        for m in MIGRATIONS {
            let sql = crate::store::render(m.sql, "s1", "s1_jobs");
            assert!(
                !sql.contains("TEMPLATE") && !sql.contains("{{"),
                "{}",
                m.name
            );
        }
        let first = crate::store::render(MIGRATIONS[0].sql, "s1", "s1_jobs");
        assert!(first.contains("\"s1\".jobs") && first.contains("'s1_jobs'"));
    }
}

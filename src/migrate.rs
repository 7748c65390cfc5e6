//! Embedded, ordered schema migrations, applied under an advisory lock.
//!
//! Two processes migrating at once is safe: the second waits for the first's lock, then
//! finds every version applied and does nothing. Starting an engine never migrates; it
//! checks the schema and fails with [`Error::NotMigrated`] if it is behind, or with
//! [`Error::SchemaTooNew`] if a newer migration does not allow it (each migration
//! records the oldest engine it allows: see `schema_fit`).

use tokio_postgres::Client;

use crate::config::IntoPgConfig;
use crate::error::{Error, Result};
use crate::schema_fit::{self, Applied, SchemaFit};
use crate::store::migration;
use crate::validate;

/// One migration: its version, name and SQL (with template markers).
struct Migration {
    version: i32,
    name: &'static str,
    /// The oldest engine (by its [`SCHEMA_VERSION`]) that still works with the schema
    /// once this is applied: the previous release's version for a migration that only
    /// adds (so a rolling upgrade can run old and new engines side by side), its own
    /// version for one that changes what older engines rely on.
    oldest_engine: i32,
    sql: &'static str,
}

const MIGRATIONS: &[Migration] = &[
    Migration {
        version: 1,
        name: "jobs",
        oldest_engine: 1,
        sql: include_str!("../migrations/0001_jobs.sql"),
    },
    Migration {
        version: 2,
        name: "limits_and_vacuum",
        oldest_engine: 2,
        sql: include_str!("../migrations/0002_limits_and_vacuum.sql"),
    },
    Migration {
        version: 3,
        name: "metadata",
        // Released with 4 to 6: allows only engines that know it, like them.
        oldest_engine: 3,
        sql: include_str!("../migrations/0003_metadata.sql"),
    },
    Migration {
        version: 4,
        name: "schedules_and_aging",
        // Engines before this release checked for an exact version: none may share it.
        oldest_engine: 4,
        sql: include_str!("../migrations/0004_schedules_and_aging.sql"),
    },
    Migration {
        version: 5,
        name: "cancel_and_flows",
        // Versions 4 to 6 come in one release: each allows only engines that know it.
        oldest_engine: 5,
        sql: include_str!("../migrations/0005_cancel_and_flows.sql"),
    },
    Migration {
        version: 6,
        name: "engines_and_lane_controls",
        oldest_engine: 6,
        sql: include_str!("../migrations/0006_engines_and_lane_controls.sql"),
    },
];

/// How the applied migrations fit this build (see [`SchemaFit`]).
pub(crate) fn fit_of(applied: &[Applied]) -> SchemaFit {
    let needed: Vec<i32> = MIGRATIONS.iter().map(|m| m.version).collect();
    schema_fit::fit(applied, &needed, SCHEMA_VERSION)
}

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

/// The SQL that brings `schema` from version `after` (0: a new schema) up to
/// [`SCHEMA_VERSION`], as one script to hand to another migration tool (sqlx,
/// refinery, Flyway…) instead of running [`migrate`]: it takes the same lock, creates
/// the schema and its migration record if missing, and records each version it applies,
/// so engines see the schema as migrated. Run it in one transaction (those tools do);
/// it is what `pglane migrate --print-sql [--after N]` prints.
///
/// ```
/// let sql = pglane::migration_sql("pglane", 0)?;
/// assert!(sql.contains("CREATE TABLE \"pglane\".jobs"));
/// # Ok::<_, pglane::Error>(())
/// ```
pub fn migration_sql(schema: &str, after: i32) -> Result<String> {
    let channel = channel_for(schema)?;
    if !(0..=SCHEMA_VERSION).contains(&after) {
        return Err(Error::InvalidConfig(format!(
            "no migration version {after}: this pglane knows 0 to {SCHEMA_VERSION}"
        )));
    }
    let list: Vec<(i32, &str, i32, &str)> = MIGRATIONS
        .iter()
        .filter(|m| m.version > after)
        .map(|m| (m.version, m.name, m.oldest_engine, m.sql))
        .collect();
    Ok(migration::script(schema, &channel, &list))
}

/// [`migrate`] on a connection you already have.
pub async fn migrate_with(client: &mut Client, schema: &str) -> Result<Vec<i32>> {
    let channel = channel_for(schema)?;
    crate::store::require_utf8(&*client).await?;
    let tx = client.transaction().await?;
    migration::lock(&tx, schema).await?;
    migration::create_record(&tx, schema).await?;
    let applied = migration::applied(&tx, schema).await?;
    // A newer release migrated this schema: fine (nothing to do) while its migrations
    // still allow this build, else refused before anything is changed.
    if let err @ SchemaFit::TooNew { .. } = fit_of(&applied) {
        return err.into_result(schema, SCHEMA_VERSION).map(|_| Vec::new());
    }
    let mut done = Vec::new();
    for m in MIGRATIONS
        .iter()
        .filter(|m| !applied.iter().any(|(v, _)| *v == m.version))
    {
        migration::apply(
            &tx,
            schema,
            &channel,
            m.version,
            m.name,
            m.oldest_engine,
            m.sql,
        )
        .await?;
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
        // Numbers are handed out ahead of time to work in progress, so there may be gaps;
        // each version is applied once, in order, whatever was applied before.
        assert_eq!(MIGRATIONS[0].version, 1);
        for pair in MIGRATIONS.windows(2) {
            assert!(pair[0].version < pair[1].version, "{}", pair[1].name);
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

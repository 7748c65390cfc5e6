//! Statements of a migration run, on the migrating transaction (see
//! [`migrate_with`](crate::migrate_with), which holds the list of migrations and the
//! order of the steps). The migrations themselves live in `migrations/`, rendered for the
//! schema like every other statement.

use tokio_postgres::GenericClient;

use super::render;
use crate::error::Result;
use crate::schema_fit::Applied;

/// Waits for the schema's migration lock, held until `tx` ends.
pub(crate) async fn lock<C: GenericClient>(tx: &C, schema: &str) -> Result<()> {
    let key = format!("pglane:migrate:{schema}");
    tx.execute(include_str!("sql/migration_lock.sql"), &[&key])
        .await?;
    Ok(())
}

/// Creates the schema and its migration record if missing.
pub(crate) async fn create_record<C: GenericClient>(tx: &C, schema: &str) -> Result<()> {
    for sql in [
        include_str!("sql/create_schema.sql"),
        include_str!("sql/migrations_table.sql"),
        include_str!("sql/migrations_oldest_engine.sql"),
    ] {
        tx.batch_execute(&render(sql, schema, "")).await?;
    }
    Ok(())
}

/// The migrations already applied to the schema.
pub(crate) async fn applied<C: GenericClient>(tx: &C, schema: &str) -> Result<Vec<Applied>> {
    let sql = render(include_str!("sql/applied_migrations.sql"), schema, "");
    let rows = tx.query(&sql, &[]).await?;
    rows.iter()
        .map(|r| Ok((r.try_get(0)?, r.try_get(1)?)))
        .collect()
}

/// Applies one migration (`sql`, with template markers) and records it as applied.
pub(crate) async fn apply<C: GenericClient>(
    tx: &C,
    schema: &str,
    channel: &str,
    version: i32,
    name: &str,
    oldest_engine: i32,
    sql: &str,
) -> Result<()> {
    tx.batch_execute(&render(sql, schema, channel)).await?;
    let record = render(include_str!("sql/record_migration.sql"), schema, channel);
    tx.execute(&record, &[&version, &name, &oldest_engine])
        .await?;
    Ok(())
}

/// The SQL of migrations `list` (version, name, SQL with markers) as one script for
/// another migration tool: the lock, the schema and its record, then each migration
/// followed by the row that records it, exactly what [`apply`] runs. Parameters are
/// written as literals (the schema is a validated identifier; names are pglane's own).
/// Meant to run in one transaction, as sqlx, refinery and Flyway run each migration.
pub(crate) fn script(schema: &str, channel: &str, list: &[(i32, &str, i32, &str)]) -> String {
    let key = format!("'pglane:migrate:{schema}'");
    let mut out = String::new();
    let mut statement = |sql: &str| {
        out.push_str(sql.trim_end());
        out.push_str(";\n\n");
    };
    statement(
        &include_str!("sql/migration_lock.sql")
            .replace("hashtext($1)", &format!("hashtext({key})")),
    );
    statement(&render(include_str!("sql/create_schema.sql"), schema, ""));
    statement(&render(
        include_str!("sql/migrations_table.sql"),
        schema,
        "",
    ));
    statement(&render(
        include_str!("sql/migrations_oldest_engine.sql"),
        schema,
        "",
    ));
    for (version, name, oldest_engine, sql) in list {
        statement(&format!(
            "-- pglane migration {version}: {name}\n{}",
            render(sql, schema, channel)
                .trim_end()
                .trim_end_matches(';')
        ));
        statement(
            &render(include_str!("sql/record_migration.sql"), schema, channel)
                .replace("$1", &version.to_string())
                .replace("$2", &format!("'{name}'"))
                .replace("$3", &oldest_engine.to_string()),
        );
    }
    out
}

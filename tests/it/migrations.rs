//! Migrations: idempotent, safe when run concurrently, and required before start.

use pglane::{Error, SCHEMA_VERSION};

use crate::support::*;

fn fresh_schema() -> String {
    format!("m_{:016x}", fastrand::u64(..))
}

async fn drop_schema(schema: &str) {
    connect(database_url())
        .await
        .batch_execute(&format!("DROP SCHEMA IF EXISTS \"{schema}\" CASCADE"))
        .await
        .unwrap();
}

/// The versions of the files in `migrations/` (numbers may be skipped while parallel
/// work lands), ending at [`SCHEMA_VERSION`].
/// The error an engine's start on `schema` fails with (it must fail).
async fn start_error(schema: &str) -> Error {
    pglane::Engine::builder(database_url())
        .schema(schema)
        .register::<Probe>()
        .start()
        .await
        .err()
        .expect("start must fail")
}

fn migration_versions() -> Vec<i32> {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/migrations");
    let mut v: Vec<i32> = std::fs::read_dir(dir)
        .unwrap()
        .filter_map(|e| e.ok()?.file_name().to_str()?.get(..4)?.parse().ok())
        .collect();
    v.sort();
    assert_eq!(v.last(), Some(&SCHEMA_VERSION));
    v
}

async fn versions(schema: &str) -> Vec<i32> {
    connect(database_url())
        .await
        .query(
            &format!("SELECT version FROM \"{schema}\".pglane_migrations ORDER BY version"),
            &[],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect()
}

#[actix_rt::test]
async fn migrate_is_idempotent() {
    let schema = fresh_schema();
    let all = migration_versions();
    assert_eq!(pglane::migrate(database_url(), &schema).await.unwrap(), all);
    assert_eq!(
        pglane::migrate(database_url(), &schema).await.unwrap(),
        Vec::<i32>::new(),
        "the second call applies nothing"
    );
    assert_eq!(versions(&schema).await, all);
    drop_schema(&schema).await;
}

#[actix_rt::test]
async fn concurrent_migrations_all_succeed_and_apply_each_version_once() {
    let schema = fresh_schema();
    let runs = (0..4).map(|_| pglane::migrate(database_url(), &schema));
    let results = futures_util::future::join_all(runs).await;
    let mut applied: Vec<i32> = Vec::new();
    for r in results {
        applied.extend(r.unwrap_or_else(|e| panic!("a concurrent migrate failed: {e}")));
    }
    applied.sort();
    let all = migration_versions();
    assert_eq!(applied, all, "each version applied by exactly one caller");
    assert_eq!(versions(&schema).await, all);
    drop_schema(&schema).await;
}

#[actix_rt::test]
async fn start_on_an_unmigrated_schema_fails_with_not_migrated() {
    let schema = fresh_schema();
    let err = start_error(&schema).await;
    match err {
        Error::NotMigrated {
            schema: s,
            found,
            expected,
        } => assert_eq!((s, found, expected), (schema.clone(), 0, SCHEMA_VERSION)),
        other => panic!("expected NotMigrated, got {other:?}"),
    }
    // An existing but empty schema is just as unmigrated.
    connect(database_url())
        .await
        .batch_execute(&format!("CREATE SCHEMA \"{schema}\""))
        .await
        .unwrap();
    let err = start_error(&schema).await;
    assert!(
        matches!(err, Error::NotMigrated { found: 0, .. }),
        "{err:?}"
    );
    // And start never migrates by surprise.
    let tables: i64 = connect(database_url())
        .await
        .query_one(
            "SELECT count(*) FROM information_schema.tables WHERE table_schema = $1",
            &[&schema],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(tables, 0);
    drop_schema(&schema).await;
}

/// Versions apply by number, and parallel work lands out of order: a schema migrated by
/// a build that lacked version 3 (the job metadata column) while having 4 and later
/// lacks a migration this build needs. The engine refuses it rather than run claims on
/// a column that is not there, and `migrate` fills the gap (safe to repeat).
#[actix_rt::test]
async fn a_schema_missing_a_middle_version_is_refused_until_migrated() {
    let schema = fresh_schema();
    pglane::migrate(database_url(), &schema).await.unwrap();
    // What a build without migration 3 leaves: no metadata column, no version 3.
    connect(database_url())
        .await
        .batch_execute(&format!(
            "ALTER TABLE \"{schema}\".jobs DROP COLUMN metadata;
             DELETE FROM \"{schema}\".pglane_migrations WHERE version = 3"
        ))
        .await
        .unwrap();
    let err = start_error(&schema).await;
    assert!(matches!(err, Error::NotMigrated { .. }), "{err:?}");
    assert_eq!(pglane::migrate(database_url(), &schema).await.unwrap(), [3]);
    assert_eq!(versions(&schema).await, migration_versions());
    let engine = pglane::Engine::builder(database_url())
        .schema(schema.clone())
        .register::<Probe>()
        .start()
        .await
        .unwrap();
    engine.shutdown().await.unwrap();
    drop_schema(&schema).await;
}

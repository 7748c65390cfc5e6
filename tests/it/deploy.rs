//! Deploying and upgrading: an engine refuses an older schema, runs against a newer one
//! within the window its migrations allow and refuses it outside, `migration_sql` is
//! what `migrate` runs, and an engine needs only the engine role's privileges.

use std::time::Duration;

use pglane::{admin, Enqueue, Error, SCHEMA_VERSION};

use crate::support::*;

async fn start(db: &TestDb) -> pglane::Result<pglane::Engine> {
    db.engine()
        .register::<Probe>()
        .data(Events::new().sender())
        .start()
        .await
}

async fn runs_a_job(db: &TestDb, engine: &pglane::Engine) {
    let id = engine.enqueue(Enqueue::new(Probe::new("x"))).await.unwrap();
    db.wait_count(
        &format!("id = {id} AND state = 'completed'"),
        1,
        Duration::from_secs(10),
    )
    .await;
}

#[actix_rt::test]
async fn engines_refuse_an_older_schema_and_accept_a_newer_one_within_its_window() {
    let db = TestDb::new().await;
    let (c, s) = (&db.client, db.schema.as_str());
    let record = format!("\"{s}\".pglane_migrations");

    // Older: the newest migration is missing.
    let newest = db
        .query(&format!(
            "DELETE FROM {record} WHERE version = {SCHEMA_VERSION} RETURNING name, oldest_engine"
        ))
        .await;
    let Err(e) = start(&db).await else {
        panic!("the engine started")
    };
    assert!(
        matches!(e, Error::NotMigrated { expected, .. } if expected == SCHEMA_VERSION),
        "{e}"
    );
    assert!(e.to_string().contains("pglane migrate"), "{e}");
    c.execute(
        &format!("INSERT INTO {record} (version, name, oldest_engine) VALUES ($1, $2, $3)"),
        &[
            &SCHEMA_VERSION,
            &newest[0].get::<_, String>(0),
            &newest[0].get::<_, Option<i32>>(1),
        ],
    )
    .await
    .unwrap();

    // Newer, from a release whose migration keeps this engine working: it starts and
    // runs jobs, and this release's `migrate` has nothing to do.
    let future = SCHEMA_VERSION + 1;
    c.batch_execute(&format!(
        "INSERT INTO {record} (version, name, oldest_engine) VALUES ({future}, 'future', {SCHEMA_VERSION})"
    ))
    .await
    .unwrap();
    let engine = start(&db).await.unwrap();
    runs_a_job(&db, &engine).await;
    engine.shutdown().await.unwrap();
    assert_eq!(
        pglane::migrate(db.url.as_str(), s).await.unwrap(),
        Vec::<i32>::new()
    );
    admin::ensure_migrated(c, s).await.unwrap();

    // Newer, and not allowing this engine: refused, saying to upgrade; nothing changed.
    c.batch_execute(&format!(
        "UPDATE {record} SET oldest_engine = {future} WHERE version = {future}"
    ))
    .await
    .unwrap();
    let Err(e) = start(&db).await else {
        panic!("the engine started")
    };
    assert!(
        matches!(e, Error::SchemaTooNew { found, oldest_engine, supported, .. }
            if found == future && oldest_engine == future && supported == SCHEMA_VERSION),
        "{e}"
    );
    println!("DEPLOY-TEST: {e}");
    assert!(e.to_string().contains("upgrade pglane"));
    assert!(matches!(
        pglane::migrate(db.url.as_str(), s).await,
        Err(Error::SchemaTooNew { .. })
    ));
    assert!(matches!(
        admin::ensure_migrated(c, s).await,
        Err(Error::SchemaTooNew { .. })
    ));

    // A record written before pglane kept `oldest_engine`: read as each row's version.
    c.batch_execute(&format!(
        "DELETE FROM {record} WHERE version = {future}; ALTER TABLE {record} DROP COLUMN oldest_engine"
    ))
    .await
    .unwrap();
    admin::ensure_migrated(c, s).await.unwrap();
    assert_eq!(
        pglane::migrate(db.url.as_str(), s).await.unwrap(),
        Vec::<i32>::new()
    );
    assert_eq!(db.count("true").await, 1, "the job run above, nothing else");
    db.cleanup().await;
}

#[actix_rt::test]
async fn the_printed_sql_is_a_migration_engines_accept() {
    let client = connect(database_url()).await;
    let schema = format!("p_{:016x}", fastrand::u64(..));
    let sql = pglane::migration_sql(&schema, 0).unwrap();
    // As a migration tool runs it: one transaction, run twice would fail, so once.
    client
        .batch_execute(&format!("BEGIN;\n{sql}\nCOMMIT;"))
        .await
        .unwrap();
    admin::ensure_migrated(&client, &schema).await.unwrap();
    assert_eq!(
        pglane::migrate(database_url(), &schema).await.unwrap(),
        Vec::<i32>::new(),
        "the script recorded every version"
    );
    let nothing = pglane::migration_sql(&schema, SCHEMA_VERSION).unwrap();
    assert!(!nothing.contains("pglane migration"));
    client
        .batch_execute(&format!("DROP SCHEMA \"{schema}\" CASCADE"))
        .await
        .unwrap();
}

/// What the README's "Deploying and upgrading" grants the engine role: no ownership, no
/// CREATE, only reading and writing the schema's rows.
const ENGINE_GRANTS: &str = "
    GRANT USAGE ON SCHEMA {schema} TO {role};
    GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA {schema} TO {role};
    GRANT USAGE, SELECT ON ALL SEQUENCES IN SCHEMA {schema} TO {role};
    GRANT EXECUTE ON ALL FUNCTIONS IN SCHEMA {schema} TO {role};
";

#[actix_rt::test]
async fn an_engine_runs_as_a_role_with_only_the_engine_grants() {
    let db = TestDb::new().await;
    let role = format!("engine_{:08x}", fastrand::u32(..));
    let schema = format!("\"{}\"", db.schema);
    db.client
        .batch_execute(&format!(
            "CREATE ROLE {role} LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE; {}",
            ENGINE_GRANTS
                .replace("{schema}", &schema)
                .replace("{role}", &role)
        ))
        .await
        .unwrap();
    let mut url: tokio_postgres::Config = db.url.parse().unwrap();
    url.user(&role);
    let as_engine = TestDb {
        url: String::new(),
        schema: db.schema.clone(),
        client: connect(&db.url).await,
    };
    let mut events = Events::new();
    let engine = pglane::Engine::builder(url.clone())
        .schema(db.schema.clone())
        .poll_interval(Duration::from_millis(200))
        .maintenance_interval(Duration::from_millis(200))
        .completed_retention(Duration::from_millis(1))
        .lease(Duration::from_secs(5))
        .call_timeout(Duration::from_secs(3))
        .retry_backoff(pglane::Backoff {
            base: Duration::from_millis(20),
            max: Duration::from_millis(50),
            jitter: 0.0,
        })
        .register::<Probe>()
        .data(events.sender())
        .start()
        .await
        .unwrap();
    wait_listening(&engine).await;
    // Claims, outcomes, retries (a failing attempt), maintenance (prune), enqueue from
    // SQL and the engine, cancel and retry of a finished job.
    let ok = engine
        .enqueue(Enqueue::new(Probe::new("ok")))
        .await
        .unwrap();
    let flaky = engine
        .enqueue(Enqueue::new(Probe::behave("flaky", Behave::FailUntil(2))))
        .await
        .unwrap();
    let mut seen = events.take(3, Duration::from_secs(10)).await;
    seen.sort_by_key(|e| (e.id, e.attempt));
    assert_eq!(
        seen.iter().map(|e| (e.id, e.attempt)).collect::<Vec<_>>(),
        [(ok, 1), (flaky, 1), (flaky, 2)]
    );
    // Completed jobs are pruned by maintenance (retention 1 ms), as this role.
    as_engine
        .wait_count("true", 0, Duration::from_secs(10))
        .await;
    let later = engine
        .enqueue(Enqueue::new(Probe::new("later")).delay(Duration::from_secs(3600)))
        .await
        .unwrap();
    assert_eq!(
        engine.cancel(later).await.unwrap(),
        pglane::CancelOutcome::Cancelled
    );
    assert!(engine.retry(later).await.unwrap());
    let stats = engine.stats().await.unwrap();
    assert!(stats.database.available, "{stats:?}");
    engine.shutdown().await.unwrap();

    // The role can do no more: migrating (creating objects) is refused.
    let e = pglane::migrate(url, &format!("{}_x", db.schema))
        .await
        .unwrap_err();
    assert_eq!(e.sqlstate(), Some("42501"), "{e}");

    db.client
        .batch_execute(&format!("DROP OWNED BY {role}; DROP ROLE {role}"))
        .await
        .unwrap();
    db.cleanup().await;
}

/// `rust-version` in Cargo.toml is at least what every crate in the committed
/// Cargo.lock declares (read from the registry's unpacked sources; crates not unpacked
/// here, e.g. other platforms' ones, are skipped).
#[test]
fn rust_version_covers_the_locked_crates() {
    let parse = |v: &str| -> Vec<u32> { v.split('.').filter_map(|p| p.parse().ok()).collect() };
    let ours = parse(env!("CARGO_PKG_RUST_VERSION"));
    let lock = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/Cargo.lock"))
        .expect("Cargo.lock");
    let home = std::env::var("CARGO_HOME")
        .unwrap_or_else(|_| format!("{}/.cargo", std::env::var("HOME").unwrap_or_default()));
    let sources: Vec<std::path::PathBuf> = std::fs::read_dir(format!("{home}/registry/src"))
        .map(|d| d.filter_map(|e| e.ok().map(|e| e.path())).collect())
        .unwrap_or_default();
    let mut checked = 0;
    let mut too_new = Vec::new();
    for package in lock.split("[[package]]").skip(1) {
        let field = |key: &str| {
            package
                .lines()
                .find_map(|l| l.strip_prefix(&format!("{key} = \"")))
                .map(|v| v.trim_end_matches('"').to_string())
        };
        let (Some(name), Some(version)) = (field("name"), field("version")) else {
            continue;
        };
        let Some(manifest) = sources
            .iter()
            .map(|s| s.join(format!("{name}-{version}/Cargo.toml")))
            .find(|p| p.exists())
        else {
            continue;
        };
        checked += 1;
        let text = std::fs::read_to_string(manifest).unwrap_or_default();
        let needs = text.lines().find_map(|l| {
            l.strip_prefix("rust-version = \"")
                .map(|v| v.trim_end_matches('"').to_string())
        });
        if let Some(needs) = needs {
            if parse(&needs) > ours {
                too_new.push(format!("{name} {version} needs {needs}"));
            }
        }
    }
    assert!(
        too_new.is_empty(),
        "rust-version {} is older than the locked crates need: {too_new:?}",
        env!("CARGO_PKG_RUST_VERSION")
    );
    println!(
        "rust-version {} covers the {checked} locked crates found",
        env!("CARGO_PKG_RUST_VERSION")
    );
}

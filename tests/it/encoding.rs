//! `pglane::migrate` refuses a database that is not UTF-8, with a typed error naming it
//! (on `SQL_ASCII`, a notification that is not valid UTF-8 makes PostgreSQL end the
//! listener's connection).

use pglane::Error;

use crate::support::*;

#[actix_rt::test]
async fn migrate_refuses_a_database_that_is_not_utf8() {
    let admin = connect(database_url()).await;
    let name = format!("pglane_ascii_{:08x}", fastrand::u32(..));
    admin
        .batch_execute(&format!(
            "CREATE DATABASE {name} ENCODING 'SQL_ASCII' TEMPLATE template0 LC_COLLATE 'C' LC_CTYPE 'C'"
        ))
        .await
        .unwrap();
    let mut config: tokio_postgres::Config = database_url().parse().unwrap();
    config.dbname(&name);
    let result = pglane::migrate(config, "pglane").await;
    let err = result.expect_err("a SQL_ASCII database was migrated");
    match &err {
        Error::UnsupportedEncoding { database, encoding } => {
            assert_eq!(
                (database.as_str(), encoding.as_str()),
                (name.as_str(), "SQL_ASCII")
            );
        }
        other => panic!("expected UnsupportedEncoding, got {other:?}"),
    }
    assert!(err.to_string().contains("UTF8"), "{err}");
    admin
        .batch_execute(&format!("DROP DATABASE {name} WITH (FORCE)"))
        .await
        .unwrap();
}

//! One table of enqueue cases, run through both doors: the Rust API (`Engine::enqueue`)
//! and the SQL function (`SELECT schema.enqueue(…)`). The doors must agree on every
//! case: both accept it and store the same row, or both reject it and write nothing.
//! Every limit of `pglane::validate` is covered at and just past its bound.
//!
//! A few inputs exist at one door only (an SQL interval can be negative, a Rust
//! `Duration` cannot; a Rust float can be infinite, a jsonb number cannot): those cases
//! say what the other door's nearest input is, or run at one door alone.

mod cases;
mod doors;

use std::time::SystemTime;

use pglane::Error;

use crate::support::*;
use cases::cases;
use doors::{rust_door, sql_door, stored};

#[actix_rt::test]
async fn rust_api_and_sql_function_agree_on_every_limit() {
    let db = TestDb::new().await;
    let engine = db.engine().register::<Probe>().start().await.unwrap();
    let now = SystemTime::now();
    let table = cases(now);
    let mut tried = (0, 0, 0);
    for c in &table {
        let rust = rust_door(&engine, &c.input).await;
        let rust_row = stored(&db).await;
        db.query("DELETE FROM {schema}.jobs").await;
        let sql = sql_door(&db, &c.input).await;
        let sql_row = stored(&db).await;
        db.query("DELETE FROM {schema}.jobs").await;

        match &rust {
            None => {}
            Some(Ok(_)) => assert!(c.ok, "{}: Rust accepted it", c.what),
            Some(Err(Error::InvalidJob(_))) => assert!(!c.ok, "{}: Rust rejected it", c.what),
            Some(Err(e)) => panic!("{}: Rust failed otherwise: {e:?}", c.what),
        }
        match &sql {
            Ok(_) => assert!(c.ok, "{}: SQL accepted it", c.what),
            Err(e) => {
                let db_err = e
                    .as_db_error()
                    .unwrap_or_else(|| panic!("{}: {e:?}", c.what));
                assert!(!c.ok, "{}: SQL rejected it: {}", c.what, db_err.message());
                assert_eq!(db_err.code().code(), c.sql_code, "{}: {db_err:?}", c.what);
                if c.sql_code == "22023" {
                    assert!(db_err.message().starts_with("pglane: "), "{}", c.what);
                }
            }
        }
        if c.ok {
            assert_eq!(sql_row.len(), 1, "{}: SQL stored {sql_row:?}", c.what);
            if rust.is_some() {
                let (r, q) = (&rust_row[0], &sql_row[0]);
                assert_eq!(r.0, q.0, "{}: the doors stored different rows", c.what);
                if c.input.run_at.is_some() {
                    assert_eq!(r.1, q.1, "{}: different run_at", c.what);
                } else {
                    assert_eq!(r.2, q.2, "{}: different delay", c.what);
                }
            }
        } else {
            assert!(
                rust_row.is_empty() && sql_row.is_empty(),
                "{}: written",
                c.what
            );
        }
        tried.0 += 1;
        tried.1 += usize::from(rust.is_some());
        tried.2 += usize::from(c.ok);
    }
    println!(
        "TWO-DOORS {} cases ({} through both doors, {} SQL only; {} accepted, {} rejected)",
        tried.0,
        tried.1,
        tried.0 - tried.1,
        tried.2,
        tried.0 - tried.2
    );
    engine.shutdown().await.unwrap();
    db.cleanup().await;
}

//! The database must be UTF-8.
//!
//! On a `SQL_ASCII` database PostgreSQL stores and forwards bytes unchecked: anyone who
//! can connect can `NOTIFY` a payload that is not valid UTF-8, and PostgreSQL then ends
//! the connection of every UTF-8 client listening on the channel, the engine's listener
//! among them (it reconnects and polls meanwhile; a flood of such payloads raised pickup
//! p99 to about 130 ms). Job args, kinds and error texts would have the same problem.
//! Other encodings would need conversions pglane never tests. Migrating therefore
//! refuses any database that is not UTF8, with a message saying what to do.

use tokio_postgres::GenericClient;

use crate::error::{Error, Result};

/// Fails with [`Error::UnsupportedEncoding`] unless the connected database is UTF8.
pub(crate) async fn require_utf8<C: GenericClient>(client: &C) -> Result<()> {
    let row = client
        .query_one(include_str!("sql/database_encoding.sql"), &[])
        .await?;
    let (database, encoding): (String, String) = (row.get(0), row.get(1));
    if encoding.eq_ignore_ascii_case("UTF8") {
        Ok(())
    } else {
        Err(Error::UnsupportedEncoding { database, encoding })
    }
}

//! Statements for the listener's own connection: a plain `tokio_postgres` client, never a
//! pooled one (bb8 drives pooled connections itself and drops their notifications). The
//! listener owns the connection and its timeouts; these functions only run the SQL.

use tokio_postgres::{Client, Error};

use super::render;

/// What the listener's health check found about its session's server.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct ListenerHealth {
    /// The server is a standby (`pg_is_in_recovery()`).
    pub(crate) in_recovery: bool,
    /// The session is read-only (`transaction_read_only`).
    pub(crate) read_only: bool,
    /// The session still listens on the channel.
    pub(crate) listening: bool,
}

/// Subscribes `client`'s session to `channel` (a validated channel name).
pub(crate) async fn listen(client: &Client, channel: &str) -> Result<(), Error> {
    let sql = render(include_str!("sql/listen.sql"), "", channel);
    client.batch_execute(&sql).await
}

/// The health check of `client`'s session, which should be listening on `channel`.
pub(crate) async fn listener_health(
    client: &Client,
    channel: &str,
) -> Result<ListenerHealth, Error> {
    let row = client
        .query_one(include_str!("sql/listener_health.sql"), &[&channel])
        .await?;
    Ok(ListenerHealth {
        in_recovery: row.try_get(0)?,
        read_only: row.try_get(1)?,
        listening: row.try_get(2)?,
    })
}

/// Drops every subscription of `client`'s session (the fault-injection hook).
pub(crate) async fn unlisten_all(client: &Client) -> Result<(), Error> {
    client
        .batch_execute(include_str!("sql/unlisten_all.sql"))
        .await
}

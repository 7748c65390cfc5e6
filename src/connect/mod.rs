//! Connecting to PostgreSQL: connection strings with TLS options, and errors that name
//! the server (host and port, never the password).
//!
//! Every connection pglane opens (the engine's pools, the listener, `migrate`, the
//! `pglane` tool) goes through a [`Connector`] made from [`ConnectOptions`], so TLS
//! works the same everywhere.

mod conninfo;
mod tls;

use std::sync::Arc;

use tokio_postgres::tls::MakeTlsConnect;
use tokio_postgres::{Client, Socket};
use tokio_postgres_rustls::MakeRustlsConnect;

pub use conninfo::SslMode;
use conninfo::TlsOptions;

use crate::error::{describe, Error, Result};

/// A database to connect to: tokio-postgres's settings plus TLS. Made from a URL or
/// `key=value` string (see [`IntoPgConfig`](crate::IntoPgConfig)), with libpq's TLS
/// parameters:
///
/// - `sslmode`: `disable`, `prefer` (the default), `require`, `verify-ca`, `verify-full`;
/// - `sslrootcert`: a PEM file of trusted CA certificates (default, or `system`: the
///   operating system's store); with `require` it makes the certificate checked as
///   with `verify-ca`, as in libpq;
/// - `sslcert` and `sslkey`: a client certificate (PEM) and its key, sent when the
///   server asks for one (`hostssl … cert` in `pg_hba.conf`).
///
/// ```
/// let db: pglane::ConnectOptions =
///     "postgres://app@db.example.com/app?sslmode=verify-full&sslrootcert=/etc/ca.pem".parse()?;
/// assert_eq!(db.ssl_mode(), pglane::SslMode::VerifyFull);
/// # Ok::<_, pglane::Error>(())
/// ```
#[derive(Debug, Clone)]
pub struct ConnectOptions {
    pg: tokio_postgres::Config,
    tls: TlsOptions,
}

impl std::str::FromStr for ConnectOptions {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self> {
        let (pg, tls) = conninfo::parse(s)?;
        Ok(ConnectOptions { pg, tls })
    }
}

impl From<tokio_postgres::Config> for ConnectOptions {
    /// tokio-postgres's own `ssl_mode` (disable, prefer, require) is kept; the server's
    /// certificate is not checked (as libpq does without `sslrootcert`).
    fn from(pg: tokio_postgres::Config) -> Self {
        use tokio_postgres::config::SslMode as Pg;
        let mode = match pg.get_ssl_mode() {
            Pg::Disable => SslMode::Disable,
            Pg::Require => SslMode::Require,
            _ => SslMode::Prefer,
        };
        ConnectOptions {
            pg,
            tls: TlsOptions {
                mode,
                ..TlsOptions::default()
            },
        }
    }
}

impl ConnectOptions {
    /// tokio-postgres's settings (hosts, user, database, timeouts…).
    pub fn pg_config(&self) -> &tokio_postgres::Config {
        &self.pg
    }

    /// tokio-postgres's settings, to change (e.g. `application_name`).
    pub fn pg_config_mut(&mut self) -> &mut tokio_postgres::Config {
        &mut self.pg
    }

    /// The TLS mode asked for.
    pub fn ssl_mode(&self) -> SslMode {
        self.tls.mode
    }

    /// Where this connects: `host:port`, comma-separated for multi-host strings. Holds
    /// no user name or password, so it is safe for logs and errors.
    pub fn target(&self) -> String {
        target(&self.pg)
    }

    /// Opens one connection (reading the certificate files now) and drives it on the
    /// current tokio runtime; it closes when the client is dropped.
    pub async fn connect(&self) -> Result<Client> {
        let (client, connection) = Connector::new(self)?.connect().await?;
        tokio::spawn(async move {
            if let Err(e) = connection.await {
                tracing::debug!(error = %e, "database connection ended");
            }
        });
        Ok(client)
    }
}

/// The stream of a connection that may be TLS-encrypted.
pub(crate) type Stream = <MakeRustlsConnect as MakeTlsConnect<Socket>>::Stream;

/// A connection and the future that drives it.
pub(crate) type Connection = tokio_postgres::Connection<Socket, Stream>;

/// What opens connections: the settings plus a ready TLS configuration (certificate
/// files are read once, when it is made).
#[derive(Clone)]
pub(crate) struct Connector {
    pg: tokio_postgres::Config,
    tls: MakeRustlsConnect,
    mode: SslMode,
    target: Arc<str>,
}

impl std::fmt::Debug for Connector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Connector")
            .field("target", &self.target)
            .field("sslmode", &self.mode.as_str())
            .finish()
    }
}

impl Connector {
    pub(crate) fn new(options: &ConnectOptions) -> Result<Self> {
        Ok(Connector {
            pg: options.pg.clone(),
            tls: MakeRustlsConnect::new(tls::client_config(&options.tls)?),
            mode: options.tls.mode,
            target: target(&options.pg).into(),
        })
    }

    /// `host:port[, host:port…]`, for messages.
    pub(crate) fn target(&self) -> &str {
        &self.target
    }

    pub(crate) fn mode(&self) -> SslMode {
        self.mode
    }

    /// Connects, with the error naming the server (see [`Error::Connect`]).
    pub(crate) async fn connect(&self) -> Result<(Client, Connection)> {
        self.connect_raw().await.map_err(|e| self.error(e))
    }

    /// Connects, keeping tokio-postgres's error (for its SQLSTATE).
    pub(crate) async fn connect_raw(
        &self,
    ) -> std::result::Result<(Client, Connection), tokio_postgres::Error> {
        self.pg.connect(self.tls.clone()).await
    }

    /// A pooled connection: made by bb8-postgres's manager with this TLS configuration
    /// (it drives the connection on its own task), keeping tokio-postgres's error.
    pub(crate) async fn connect_pooled(
        &self,
    ) -> std::result::Result<Client, tokio_postgres::Error> {
        let manager =
            bb8_postgres::PostgresConnectionManager::new(self.pg.clone(), self.tls.clone());
        bb8::ManageConnection::connect(&manager).await
    }

    /// A failed connect as an [`Error::Connect`].
    pub(crate) fn error(&self, e: tokio_postgres::Error) -> Error {
        Error::Connect {
            target: self.target.to_string(),
            reason: describe(&e),
            source: e,
        }
    }

    /// "… (connecting to host:port)": a connect error's text with the server named.
    pub(crate) fn describe(&self, e: &tokio_postgres::Error) -> String {
        format!("{} (connecting to {})", describe(e), self.target)
    }
}

fn target(pg: &tokio_postgres::Config) -> String {
    use tokio_postgres::config::Host;
    let ports = pg.get_ports();
    let port = |i: usize| match ports {
        [] => 5432,
        [one] => *one,
        many => many.get(i).copied().unwrap_or(5432),
    };
    let hosts: Vec<String> = pg
        .get_hosts()
        .iter()
        .enumerate()
        .map(|(i, h)| match h {
            Host::Tcp(name) if name.contains(':') => format!("[{name}]:{}", port(i)),
            Host::Tcp(name) => format!("{name}:{}", port(i)),
            #[cfg(unix)]
            Host::Unix(path) => format!("{}/.s.PGSQL.{}", path.display(), port(i)),
        })
        .collect();
    if hosts.is_empty() {
        "localhost:5432 (no host given)".into()
    } else {
        hosts.join(", ")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[actix_rt::test]
    async fn a_refused_connection_names_host_and_port_and_hides_the_password() {
        // Port 1 on loopback: nothing listens there, so the connect is refused at once.
        let db: ConnectOptions = "postgres://u:hunter2@127.0.0.1:1/db?sslmode=disable"
            .parse()
            .unwrap();
        let e = db.connect().await.unwrap_err();
        let text = e.to_string();
        assert!(
            text.starts_with("could not connect to 127.0.0.1:1: "),
            "{text}"
        );
        assert!(!text.contains("hunter2"), "{text}");
        assert!(e.is_topology_change());
        assert!(matches!(e, Error::Connect { .. }));
    }

    #[test]
    fn targets_read_as_host_and_port() {
        let db: ConnectOptions = "postgres://u@h1:5432,h2/db".parse().unwrap();
        assert_eq!(db.target(), "h1:5432, h2:5432");
        let db: ConnectOptions = "host=a,b port=1,2".parse().unwrap();
        assert_eq!(db.target(), "a:1, b:2");
        let db: ConnectOptions = "host=/run/postgresql port=5433".parse().unwrap();
        assert_eq!(db.target(), "/run/postgresql/.s.PGSQL.5433");
    }
}

//! Private servers, the server clock, and our backends (found and killed by
//! `application_name`).

use std::time::{Duration, Instant, SystemTime};

use pglane::devdb::TempPostgres;
use tokio_postgres::{Client, NoTls};

/// What a test that needs its own server says when PostgreSQL's server binaries are
/// missing: `DATABASE_URL` cannot stand in for them.
pub const NEEDS_SERVER_BINARIES: &str = "this test starts and breaks its own PostgreSQL \
     server: it needs initdb and pg_ctl (Debian: postgresql-15)";

/// Fails the test, saying why, unless PostgreSQL's server binaries are installed.
#[track_caller]
pub fn require_server_binaries() {
    if pglane::devdb::server_binaries().is_none() {
        panic!("{NEEDS_SERVER_BINARIES}");
    }
}

/// Starts a private server (off the async thread: initdb takes a while).
pub async fn private_server(extra_conf: &[&str]) -> TempPostgres {
    require_server_binaries();
    let extra: Vec<String> = extra_conf.iter().map(|s| s.to_string()).collect();
    blocking(move || {
        let refs: Vec<&str> = extra.iter().map(String::as_str).collect();
        let pg = TempPostgres::init(&refs)?;
        pg.start_server()?;
        Ok(pg)
    })
    .await
}

/// Starts a private server after `prepare` has written its files (certificates,
/// `pg_hba.conf`) into the initialised data directory.
pub async fn private_server_with(
    extra_conf: &[&str],
    prepare: impl FnOnce(&TempPostgres) -> Result<(), String> + Send + 'static,
) -> TempPostgres {
    require_server_binaries();
    let extra: Vec<String> = extra_conf.iter().map(|s| s.to_string()).collect();
    blocking(move || {
        let refs: Vec<&str> = extra.iter().map(String::as_str).collect();
        let pg = TempPostgres::init(&refs)?;
        prepare(&pg)?;
        pg.start_server()?;
        Ok(pg)
    })
    .await
}

/// Runs a blocking server command (pg_ctl…) off the async thread; panics on failure.
pub async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, String> + Send + 'static,
) -> T {
    tokio::task::spawn_blocking(f)
        .await
        .expect("blocking task")
        .unwrap_or_else(|e| panic!("server command failed: {e}"))
}

/// Connects, retrying for up to `timeout` (the server may be restarting).
pub async fn connect_retry(url: &str, timeout: Duration) -> Client {
    let deadline = Instant::now() + timeout;
    loop {
        match tokio_postgres::connect(url, NoTls).await {
            Ok((client, conn)) => {
                actix_rt::spawn(async move {
                    let _ = conn.await;
                });
                return client;
            }
            Err(e) => {
                assert!(Instant::now() < deadline, "could not connect to {url}: {e}");
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    }
}

/// The server's clock: fault times are compared with `started_at`/`finished_at`.
pub async fn server_now(client: &Client) -> SystemTime {
    client
        .query_one("SELECT clock_timestamp()", &[])
        .await
        .expect("server clock")
        .get(0)
}

/// A backend of ours, from `pg_stat_activity`.
#[derive(Debug, Clone)]
pub struct Backend {
    pub pid: i32,
    pub app: String,
    pub started: SystemTime,
}

/// The backends whose `application_name` is `pglane <role> <id>` for one of `roles`.
pub async fn backends(client: &Client, id: &str, roles: &[&str]) -> Vec<Backend> {
    let names: Vec<String> = roles.iter().map(|r| format!("pglane {r} {id}")).collect();
    client
        .query(
            "SELECT pid, application_name, backend_start FROM pg_stat_activity \
             WHERE application_name = ANY($1) AND pid <> pg_backend_pid()",
            &[&names],
        )
        .await
        .expect("pg_stat_activity")
        .iter()
        .map(|r| Backend {
            pid: r.get(0),
            app: r.get(1),
            started: r.get(2),
        })
        .collect()
}

/// `pg_terminate_backend` on every backend of `id` with one of `roles`; returns them.
pub async fn terminate(client: &Client, id: &str, roles: &[&str]) -> Vec<Backend> {
    let victims = backends(client, id, roles).await;
    for b in &victims {
        client
            .query_one("SELECT pg_terminate_backend($1)", &[&b.pid])
            .await
            .expect("pg_terminate_backend");
    }
    victims
}

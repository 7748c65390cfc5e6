//! TLS against a private server started with `ssl = on` and a CA, server and client
//! certificate made by the test (rcgen): `require` encrypts, `verify-full` checks the
//! host name, `verify-ca` only the chain, a client certificate passes `hostssl … cert`,
//! and an engine (pools and listener) runs over verify-full through a killed listener
//! and a read-only flip. Run with `--nocapture` to see the `TLS-TEST` lines.

use std::path::PathBuf;
use std::time::Duration;

use pglane::devdb::TempPostgres;
use pglane::{ConnectOptions, Enqueue, Error, ListenerMode};
use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, DnType, ExtendedKeyUsagePurpose, IsCa,
    KeyPair, KeyUsagePurpose,
};
use tokio_postgres::Client;

use crate::faults::{connect_retry, flip_read_only, private_server_with, terminate};
use crate::support::*;

/// Where the client finds its files, and the server's port.
struct Tls {
    pg: TempPostgres,
    ca: PathBuf,
    client_cert: PathBuf,
    client_key: PathBuf,
    /// A plain-text session as `postgres` (only it may skip TLS).
    admin: Client,
}

impl Tls {
    fn url(&self, user: &str, host: &str, params: &str) -> String {
        format!(
            "postgres://{user}@{host}:{}/postgres?{params}",
            self.pg.port()
        )
    }

    fn ca(&self) -> String {
        self.ca.display().to_string()
    }
}

/// `postgres` may connect without TLS (the test's admin session); everyone else must use
/// it, and `certuser` must show a client certificate naming it.
const HBA: &str = "local all all trust
host all postgres 127.0.0.1/32 trust
hostssl all certuser 127.0.0.1/32 cert
hostssl all all 127.0.0.1/32 trust
";

async fn tls_server() -> Tls {
    let ca_key = KeyPair::generate().unwrap();
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca_params
        .distinguished_name
        .push(DnType::CommonName, "pglane test CA");
    ca_params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    let ca = CertifiedIssuer::self_signed(ca_params, ca_key).unwrap();
    // The server's certificate names `localhost` only, not 127.0.0.1.
    let server_key = KeyPair::generate().unwrap();
    let mut params = CertificateParams::new(vec!["localhost".to_string()]).unwrap();
    params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    let server = params.signed_by(&server_key, &ca).unwrap();
    let client_key = KeyPair::generate().unwrap();
    let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
    params
        .distinguished_name
        .push(DnType::CommonName, "certuser");
    params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
    let client = params.signed_by(&client_key, &ca).unwrap();

    let files = [
        ("ca.crt", ca.pem(), 0o644),
        ("server.crt", server.pem(), 0o644),
        ("server.key", server_key.serialize_pem(), 0o600),
        ("client.crt", client.pem(), 0o644),
        ("client.key", client_key.serialize_pem(), 0o600),
    ];
    let pg = private_server_with(
        &[
            "ssl = on",
            "ssl_cert_file = 'server.crt'",
            "ssl_key_file = 'server.key'",
            "ssl_ca_file = 'ca.crt'",
        ],
        move |pg| {
            for (name, pem, mode) in &files {
                pg.write_data_file(name, pem.as_bytes(), *mode)?;
            }
            pg.write_hba(HBA)
        },
    )
    .await;
    let admin = connect_retry(&pg.url(), Duration::from_secs(10)).await;
    admin
        .batch_execute("CREATE ROLE app LOGIN SUPERUSER; CREATE ROLE certuser LOGIN")
        .await
        .unwrap();
    let data = PathBuf::from(pg.data());
    Tls {
        ca: data.join("ca.crt"),
        client_cert: data.join("client.crt"),
        client_key: data.join("client.key"),
        pg,
        admin,
    }
}

async fn connect(url: &str) -> pglane::Result<Client> {
    url.parse::<ConnectOptions>()?.connect().await
}

/// The TLS version and cipher of this session (`pg_stat_ssl`), or `None` in plain text.
async fn session_tls(client: &Client) -> Option<(String, String)> {
    let row = client
        .query_one(
            "SELECT ssl, version, cipher FROM pg_stat_ssl WHERE pid = pg_backend_pid()",
            &[],
        )
        .await
        .unwrap();
    row.get::<_, bool>(0).then(|| (row.get(1), row.get(2)))
}

#[actix_rt::test]
async fn require_verify_ca_verify_full_and_client_certificates() {
    let t = tls_server().await;
    let port = t.pg.port();

    // require: encrypted, no certificate check; plain text is refused for `app`.
    let c = connect(&t.url("app", "127.0.0.1", "sslmode=require"))
        .await
        .unwrap();
    assert!(session_tls(&c).await.is_some(), "require must encrypt");
    let e = connect(&t.url("app", "127.0.0.1", "sslmode=disable"))
        .await
        .unwrap_err();
    let text = e.to_string();
    assert!(matches!(e, Error::Connect { .. }), "{e:?}");
    assert!(
        text.starts_with(&format!("could not connect to 127.0.0.1:{port}: ")),
        "{text}"
    );
    assert!(text.contains("no encryption"), "{text}");

    // verify-full: the certificate names `localhost`.
    let url = t.url(
        "app",
        "localhost",
        &format!("sslmode=verify-full&sslrootcert={}", t.ca()),
    );
    let c = connect(&url).await.unwrap();
    let (version, cipher) = session_tls(&c).await.expect("encrypted");
    println!("TLS-TEST: connected sslmode=verify-full host=localhost:{port} {version} {cipher}");
    let wrong = t.url(
        "app",
        "127.0.0.1",
        &format!("sslmode=verify-full&sslrootcert={}", t.ca()),
    );
    let text = connect(&wrong).await.unwrap_err().to_string();
    println!("TLS-TEST: refused sslmode=verify-full host=127.0.0.1:{port}: {text}");
    assert!(
        text.contains(&format!("127.0.0.1:{port}")) && text.contains("not valid for name"),
        "{text}"
    );
    // verify-ca checks the chain, not the name; an unknown CA fails both.
    let c = connect(&t.url(
        "app",
        "127.0.0.1",
        &format!("sslmode=verify-ca&sslrootcert={}", t.ca()),
    ))
    .await
    .unwrap();
    assert!(session_tls(&c).await.is_some());
    let other_ca =
        t.pg.write_data_file(
            "other.crt",
            rcgen::generate_simple_self_signed(vec!["x".into()])
                .unwrap()
                .cert
                .pem()
                .as_bytes(),
            0o644,
        )
        .unwrap();
    let text = connect(&t.url(
        "app",
        "localhost",
        &format!("sslmode=verify-ca&sslrootcert={}", other_ca.display()),
    ))
    .await
    .unwrap_err()
    .to_string();
    assert!(text.contains("invalid peer certificate"), "{text}");

    // A client certificate, demanded by `hostssl … cert` for certuser.
    let cert = format!(
        "sslmode=verify-full&sslrootcert={}&sslcert={}&sslkey={}",
        t.ca(),
        t.client_cert.display(),
        t.client_key.display()
    );
    let c = connect(&t.url("certuser", "localhost", &cert))
        .await
        .unwrap();
    let user: String = c
        .query_one("SELECT current_user::text", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(user, "certuser");
    println!("TLS-TEST: client certificate accepted for certuser (hostssl … cert)");
    let text = connect(&t.url(
        "certuser",
        "localhost",
        &format!("sslmode=verify-full&sslrootcert={}", t.ca()),
    ))
    .await
    .unwrap_err()
    .to_string();
    assert!(text.contains("certificate"), "{text}");
    drop(t.admin);
}

#[actix_rt::test]
async fn an_engine_runs_over_verify_full_through_a_listener_kill_and_a_read_only_flip() {
    let t = tls_server().await;
    let url = t.url(
        "app",
        "localhost",
        &format!("sslmode=verify-full&sslrootcert={}", t.ca()),
    );
    let schema = format!("t_{:016x}", fastrand::u64(..));
    pglane::migrate(url.as_str(), &schema).await.unwrap();
    let db = TestDb {
        url: url.clone(),
        schema,
        client: connect_retry(&t.pg.url(), Duration::from_secs(5)).await,
    };
    let id = format!("tls-{:08x}", fastrand::u32(..));
    let mut events = Events::new();
    let engine = db
        .engine()
        .worker_id(&id)
        .listener_health_interval(Duration::from_millis(300))
        .reconnect_backoff(pglane::Backoff {
            base: Duration::from_millis(100),
            max: Duration::from_millis(500),
            jitter: 0.3,
        })
        .register::<Probe>()
        .data(events.sender())
        .start()
        .await
        .unwrap();
    wait_listening(&engine).await;
    let run = |tag: &'static str| {
        let engine = engine.clone();
        async move { engine.enqueue(Enqueue::new(Probe::new(tag))).await.unwrap() }
    };
    // The operator tool over the same verify-full URL.
    let cli = std::process::Command::new(env!("CARGO_BIN_EXE_pglane"))
        .args(["--database-url", &url, "--schema", &db.schema, "stats"])
        .output()
        .unwrap();
    assert!(
        cli.status.success(),
        "{}",
        String::from_utf8_lossy(&cli.stderr)
    );
    let first = run("first").await;
    assert_eq!(events.next(Duration::from_secs(5)).await.id, first);

    // Every connection of the engine is encrypted.
    let plain: i64 = t
        .admin
        .query_one(
            "SELECT count(*) FROM pg_stat_activity a JOIN pg_stat_ssl s USING (pid) \
             WHERE a.application_name LIKE '%' || $1 AND NOT s.ssl",
            &[&id],
        )
        .await
        .unwrap()
        .get(0);
    let encrypted: i64 = t
        .admin
        .query_one(
            "SELECT count(*) FROM pg_stat_activity a JOIN pg_stat_ssl s USING (pid) \
             WHERE a.application_name LIKE '%' || $1 AND s.ssl",
            &[&id],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(plain, 0);
    assert!(encrypted >= 2, "listener and pool: {encrypted}");

    // The listener is killed: it reconnects over TLS and NOTIFY wakes the lanes again.
    let before = engine.stats().await.unwrap().listener.connects;
    assert_eq!(terminate(&t.admin, &id, &["listener"]).await.len(), 1);
    wait_stats(&engine, "the listener back", Duration::from_secs(10), |s| {
        s.listener.connects > before && s.listener.mode == ListenerMode::Notify
    })
    .await;
    let second = run("second").await;
    assert_eq!(events.next(Duration::from_secs(5)).await.id, second);

    // A read-only flip (a demoted primary): noticed by the health check, then recovered.
    t.admin
        .batch_execute("SET default_transaction_read_only = off")
        .await
        .unwrap();
    flip_read_only(&t.admin, true).await;
    wait_stats(&engine, "the flip noticed", Duration::from_secs(10), |s| {
        !s.database.available && s.listener.mode == ListenerMode::PollOnly
    })
    .await;
    flip_read_only(&t.admin, false).await;
    let s = wait_stats(&engine, "recovery", Duration::from_secs(15), |s| {
        s.database.available && s.listener.mode == ListenerMode::Notify
    })
    .await;
    println!(
        "TLS-TEST: engine over sslmode=verify-full recovered: listener connects={}",
        s.listener.connects
    );
    let third = run("third").await;
    assert_eq!(events.next(Duration::from_secs(10)).await.id, third);
    engine.shutdown().await.unwrap();
    db.cleanup().await;
}

//! The `pglane` binary as an operator runs it: exit codes (0 done, 1 nothing changed or
//! found, 2 usage, 3 database or configuration), `show` with args and history, retry and
//! cancel of unknown ids, `migrate --print-sql`, and `--help`.

use std::process::{Command, Output};
use std::time::Duration;

use pglane::Enqueue;

use crate::support::*;

fn pglane(db: Option<&TestDb>, args: &[&str]) -> Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_pglane"));
    if let Some(db) = db {
        cmd.args(["--database-url", &db.url, "--schema", &db.schema]);
    }
    cmd.args(args).output().expect("the pglane binary runs")
}

fn text(o: &Output) -> (i32, String, String) {
    (
        o.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&o.stdout).into_owned(),
        String::from_utf8_lossy(&o.stderr).into_owned(),
    )
}

#[test]
fn usage_and_configuration_errors_have_their_own_exit_codes() {
    let (code, out, _) = text(
        &Command::new(env!("CARGO_BIN_EXE_pglane"))
            .arg("--help")
            .env("PGLANE_SCHEMA", "")
            .env("DATABASE_URL", "postgres://u:secret@h/db")
            .output()
            .unwrap(),
    );
    assert_eq!(code, 0);
    assert!(out.contains("3  database or configuration error"), "{out}");
    assert!(!out.contains("=]") && !out.contains("secret"), "{out}");

    assert_eq!(text(&pglane(None, &["frobnicate"])).0, 2);
    assert_eq!(text(&pglane(None, &["show"])).0, 2, "missing id");

    let (code, _, err) = text(&pglane(None, &["--database-url", "not a url", "stats"]));
    assert_eq!(code, 3);
    assert!(err.contains("not a URL or key=value string"), "{err}");
    let (code, _, err) = text(&pglane(
        None,
        &[
            "--database-url",
            "postgres://u:secret@127.0.0.1:1/x",
            "stats",
        ],
    ));
    assert_eq!(code, 3);
    assert!(err.contains("could not connect to 127.0.0.1:1"), "{err}");
    assert!(!err.contains("secret"), "{err}");

    let (code, sql, _) = text(&pglane(None, &["migrate", "--print-sql", "--schema", "s1"]));
    assert_eq!(code, 0);
    assert!(sql.contains("CREATE TABLE \"s1\".jobs") && sql.contains("VALUES (2, "));
    let (_, sql, _) = text(&pglane(None, &["migrate", "--print-sql", "--after", "1"]));
    assert!(!sql.contains("migration 1:") && sql.contains("pglane migration 2:"));
    assert_eq!(
        text(&pglane(None, &["migrate", "--print-sql", "--after", "9"])).0,
        3
    );
}

#[actix_rt::test]
async fn show_retry_and_cancel_say_what_happened() {
    let db = TestDb::new().await;
    let engine = db.probe_engine().await;
    let id = engine
        .enqueue(
            Enqueue::new(Probe::behave("boom", Behave::FailUntil(99)))
                .priority(7)
                .max_attempts(2),
        )
        .await
        .unwrap();
    db.wait_count(
        &format!("id = {id} AND state = 'failed'"),
        1,
        Duration::from_secs(10),
    )
    .await;
    engine.shutdown().await.unwrap();

    let (code, out, err) = text(&pglane(Some(&db), &["show", &id.to_string()]));
    assert_eq!(code, 0, "{out}{err}");
    println!("{out}");
    for needle in [
        &format!("job {id}: probe"),
        "priority 7",
        "failed (attempt 2/2)",
        "\"tag\": \"boom\"",
        "enqueued",
        "attempt 1 failed",
        "attempt 2 failed",
    ] {
        assert!(out.contains(needle), "{needle:?} missing in\n{out}");
    }

    for cmd in ["show", "retry", "cancel"] {
        let (code, _, err) = text(&pglane(Some(&db), &[cmd, "999999999"]));
        assert_eq!(code, 1, "{cmd}");
        assert!(err.contains("job 999999999 does not exist"), "{cmd}: {err}");
    }
    let id = id.to_string();
    assert_eq!(text(&pglane(Some(&db), &["cancel", &id])).0, 1);
    let (code, out, _) = text(&pglane(Some(&db), &["retry", &id]));
    assert_eq!(
        (code, out.trim()),
        (0, &*format!("job {id} is queued to run again"))
    );
    let (code, _, err) = text(&pglane(Some(&db), &["retry", &id]));
    assert_eq!(code, 1);
    assert!(
        err.contains("is available: only failed or cancelled jobs"),
        "{err}"
    );
    assert_eq!(text(&pglane(Some(&db), &["cancel", &id])).0, 0);

    let (code, out, _) = text(&pglane(Some(&db), &["list"]));
    assert_eq!(code, 0);
    let header = out.lines().next().unwrap_or_default();
    // Columns as wide as their content: `cancelled` and `probe` set them.
    assert!(header.contains("state      kind   queue"), "{out}");
    db.cleanup().await;
}

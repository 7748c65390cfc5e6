//! Log lines people can act on: a failed attempt at `warn`, a job failed for good at
//! `error`, each naming the job (id, kind, queue, lane, attempt/max) and the error, never
//! its args; the engine's start and stop at `info`.

use std::time::Duration;

use pglane::Enqueue;

use crate::support::*;

/// A job failing every attempt logs one `warn` per failed attempt and one `error` when
/// it fails for good, with what an operator needs to find it, and never its args.
#[actix_rt::test]
async fn failed_attempts_warn_and_failure_for_good_is_an_error() {
    // The engine's actors run on this test's thread (one actix system per test).
    let (lines, _capturing) = capture();

    let db = TestDb::new().await;
    let engine = db.engine().register::<Probe>().start().await.unwrap();
    let secret = "s3cr3t-arg-value";
    let id = engine
        .enqueue(Enqueue::new(Probe::behave(secret, Behave::FailUntil(99))).max_attempts(3))
        .await
        .unwrap();
    db.wait_count(
        &format!("id = {id} AND state = 'failed'"),
        1,
        Duration::from_secs(10),
    )
    .await;
    engine.shutdown().await.unwrap();

    let text = lines.text();
    let warns: Vec<&str> = text
        .lines()
        .filter(|l| l.contains("WARN") && l.contains("job attempt failed"))
        .collect();
    assert_eq!(warns.len(), 2, "{text}");
    for (i, line) in warns.iter().enumerate() {
        let n = i + 1;
        for field in [
            format!("job={id}"),
            "kind=\"probe\"".to_string(),
            "queue=default".to_string(),
            "lane=\"default\"".to_string(),
            format!("attempt={n}"),
            "max_attempts=3".to_string(),
            format!("error=failing attempt {n}"),
        ] {
            assert!(line.contains(&field), "{field} missing in {line}");
        }
    }
    let errors: Vec<&str> = text
        .lines()
        .filter(|l| l.contains("ERROR") && l.contains("job failed for good"))
        .collect();
    assert_eq!(errors.len(), 1, "{text}");
    assert!(errors[0].contains(&format!("job={id}")), "{}", errors[0]);
    assert!(errors[0].contains("attempt=3"), "{}", errors[0]);
    assert!(
        errors[0].contains("error=failing attempt 3"),
        "{}",
        errors[0]
    );
    assert!(!text.contains(secret), "args leaked into the logs:\n{text}");
    assert!(text.contains("pglane engine started"), "{text}");
    assert!(text.contains("pglane engine stopped"), "{text}");
    db.cleanup().await;
}

//! The test kit (`pglane::testing`) used as an application's test would use it, and
//! `Engine::wait_idle`. The README's "Testing your jobs" shows the first test verbatim.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use pglane::testing::{Drained, Ran, TestSchema};
use pglane::{assert_enqueued, refute_enqueued, Enqueue, Job, JobContext, JobError};
use serde::{Deserialize, Serialize};
use serde_json::json;

use crate::support::{Behave, Probe};

// README: begin test-kit example
#[derive(Serialize, Deserialize)]
struct SendWelcome {
    email: String,
}

impl Job for SendWelcome {
    const KIND: &'static str = "send_welcome";

    async fn run(self, ctx: JobContext) -> Result<(), JobError> {
        // (The mail is sent here.) Then the CRM is told, by a job of its own.
        ctx.enqueue(Enqueue::new(RecordSignup { email: self.email }))
            .await
            .map_err(JobError::retry)?;
        Ok(())
    }
}

#[derive(Serialize, Deserialize)]
struct RecordSignup {
    email: String,
}

impl Job for RecordSignup {
    const KIND: &'static str = "record_signup";

    async fn run(self, _ctx: JobContext) -> Result<(), JobError> {
        Ok(())
    }
}

#[actix_rt::test]
async fn signup_sends_a_welcome_mail_then_records_it() {
    // A fresh migrated schema, dropped when `db` is.
    let db = TestSchema::new().await.unwrap();

    // The code under test enqueues; here, directly.
    let welcome = Enqueue::new(SendWelcome {
        email: "ada@example.com".into(),
    });
    db.enqueue(welcome.priority(5)).await.unwrap();

    assert_enqueued!(db, SendWelcome, json!({"email": "ada@example.com"}));
    refute_enqueued!(db, SendWelcome, json!({"email": "bob@example.com"}));
    refute_enqueued!(db, RecordSignup);

    // Runs the queue to empty, jobs enqueued by the jobs included.
    let drained = db
        .drain()
        .register::<SendWelcome>()
        .register::<RecordSignup>()
        .run()
        .await
        .unwrap();
    assert_eq!(
        drained,
        Drained {
            completed: 2,
            ..Drained::default()
        }
    );
    refute_enqueued!(db, SendWelcome);
    refute_enqueued!(db, RecordSignup);
}
// README: end test-kit example

/// What a handler asked for, reported to the test through the context's data.
#[derive(Serialize, Deserialize)]
struct Answer {
    with: String,
}

/// The context an inline run gets, seen from inside the handler.
type SeenRow = (i64, i32, i32, String, i32);

#[derive(Clone, Default)]
struct Seen(Arc<Mutex<Vec<SeenRow>>>);

impl Job for Answer {
    const KIND: &'static str = "answer";
    const MAX_ATTEMPTS: i32 = 2;

    async fn run(self, ctx: JobContext) -> Result<(), JobError> {
        // A real context: its pool reaches the database.
        let conn = ctx.pool().get().await.map_err(JobError::retry)?;
        let one: i32 = conn.query_one("SELECT 1", &[]).await?.get(0);
        if let Some(seen) = ctx.data::<Seen>() {
            let row = (
                ctx.id(),
                ctx.attempt(),
                ctx.max_attempts(),
                ctx.lane().to_string(),
                one,
            );
            seen.0.lock().unwrap().push(row);
        }
        match self.with.as_str() {
            "fail" => Err(JobError::retry("nope")),
            "cancel" => Err(JobError::cancel("not wanted")),
            "snooze" => Err(JobError::snooze(Duration::from_secs(60))),
            "panic" => panic!("on purpose"),
            _ => Ok(()),
        }
    }
}

fn answer(with: &str) -> Enqueue<Answer> {
    Enqueue::new(Answer { with: with.into() })
}

/// `run_job` runs one job's handler inline with a real context and writes its outcome
/// as the engine would.
#[actix_rt::test]
async fn run_job_runs_one_handler_inline_and_writes_its_outcome() {
    let mut db = TestSchema::new().await.unwrap();
    let seen = Seen::default();
    db.data(seen.clone());
    let ok = db.enqueue(answer("ok")).await.unwrap();
    let fail = db.enqueue(answer("fail")).await.unwrap();
    let cancel = db.enqueue(answer("cancel")).await.unwrap();
    let snooze = db.enqueue(answer("snooze")).await.unwrap();
    let panics = db.enqueue(answer("panic")).await.unwrap();

    assert_eq!(db.run_job::<Answer>(ok).await.unwrap(), Ran::Completed);
    assert_eq!(
        db.run_job::<Answer>(fail).await.unwrap(),
        Ran::Retried {
            error: "nope".into()
        }
    );
    // Retried: back in the queue, scheduled after its backoff; run it again now.
    let left = db.enqueued::<Answer>().await.unwrap();
    let again = left.iter().find(|j| j.id == fail).unwrap();
    assert!(again.scheduled && again.attempt == 1, "{again:?}");
    assert_eq!(
        db.run_job::<Answer>(fail).await.unwrap(),
        Ran::Failed {
            error: "nope".into()
        }
    );
    assert!(matches!(
        db.run_job::<Answer>(cancel).await.unwrap(),
        Ran::Cancelled { reason } if reason.contains("not wanted")
    ));
    assert_eq!(
        db.run_job::<Answer>(snooze).await.unwrap(),
        Ran::Snoozed {
            delay: Duration::from_secs(60)
        }
    );
    assert!(matches!(
        db.run_job::<Answer>(panics).await.unwrap(),
        Ran::Retried { error } if error.contains("on purpose")
    ));
    // A job that is not available (finished) is a clear error.
    let err = db.run_job::<Answer>(ok).await.unwrap_err();
    assert!(err.to_string().contains("not available"), "{err}");

    let seen = seen.0.lock().unwrap().clone();
    assert_eq!(seen[0], (ok, 1, 2, "inline".to_string(), 1));
    assert_eq!((seen[1].0, seen[1].1), (fail, 1));
    assert_eq!((seen[2].0, seen[2].1), (fail, 2));
    // The finished rows are what the engine would have written.
    let states = states(&db).await;
    assert_eq!(
        states,
        [
            (ok, "completed".to_string()),
            (fail, "failed".to_string()),
            (cancel, "failed".to_string()),
            (snooze, "available".to_string()),
            (panics, "available".to_string()),
        ]
    );
}

async fn states(db: &TestSchema) -> Vec<(i64, String)> {
    let client = crate::support::connect(db.url()).await;
    let sql = format!(
        "SELECT id, state FROM \"{}\".all_jobs ORDER BY id",
        db.schema()
    );
    client
        .query(&sql, &[])
        .await
        .unwrap()
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect()
}

/// A drain runs due jobs in claim order; with scheduled jobs it also runs those and
/// retries at once; without recursion it leaves jobs enqueued meanwhile.
#[actix_rt::test]
async fn drain_options_scheduled_and_recursion() {
    let db = TestSchema::new().await.unwrap();
    db.enqueue(answer("ok").delay(Duration::from_secs(3600)))
        .await
        .unwrap();
    db.enqueue(answer("fail")).await.unwrap();
    let due_only = db.drain().register::<Answer>().run().await.unwrap();
    // The failing job ran once; its retry waits for its backoff, like the scheduled job.
    assert_eq!(
        due_only,
        Drained {
            retried: 1,
            ..Drained::default()
        }
    );
    assert_eq!(db.enqueued::<Answer>().await.unwrap().len(), 2);
    let all = db
        .drain()
        .register::<Answer>()
        .with_scheduled(true)
        .run()
        .await
        .unwrap();
    assert_eq!(
        all,
        Drained {
            completed: 1,
            failed: 1,
            ..Drained::default()
        }
    );
    refute_enqueued!(db, Answer);

    // Without recursion, the job the first one enqueues stays for later.
    db.enqueue(Enqueue::new(SendWelcome {
        email: "x@example.com".into(),
    }))
    .await
    .unwrap();
    let first = db
        .drain()
        .register::<SendWelcome>()
        .register::<RecordSignup>()
        .with_recursion(false)
        .run()
        .await
        .unwrap();
    assert_eq!(first.completed, 1);
    assert_enqueued!(db, RecordSignup, json!({"email": "x@example.com"}));
    // A kind not registered for the drain is left alone.
    let none = db.drain().register::<SendWelcome>().run().await.unwrap();
    assert_eq!(none.runs(), 0);
    assert_enqueued!(db, RecordSignup);
}

/// The schema is dropped with the `TestSchema`, even when the test fails.
#[actix_rt::test]
async fn schema_is_dropped_with_the_test_schema() {
    let db = TestSchema::new().await.unwrap();
    let (url, schema) = (db.url().to_string(), db.schema().to_string());
    let exists = |client: tokio_postgres::Client, schema: String| async move {
        let n: i64 = client
            .query_one(
                "SELECT count(*) FROM pg_namespace WHERE nspname = $1",
                &[&schema],
            )
            .await
            .unwrap()
            .get(0);
        n == 1
    };
    assert!(exists(crate::support::connect(&url).await, schema.clone()).await);
    let failed = std::thread::spawn(move || {
        let _db = db;
        panic!("a failing test");
    })
    .join();
    assert!(failed.is_err());
    assert!(!exists(crate::support::connect(&url).await, schema).await);
}

/// `wait_idle` answers once every due job of the engine's kinds has run, jobs enqueued
/// by jobs included, and says so when the queue stays busy past the timeout.
#[actix_rt::test]
async fn wait_idle_waits_until_the_queue_is_drained() {
    let db = TestSchema::new().await.unwrap();
    let engine = db
        .engine()
        .register::<SendWelcome>()
        .register::<RecordSignup>()
        .register::<Probe>()
        .start()
        .await
        .unwrap();
    for i in 0..50 {
        let email = format!("u{i}@example.com");
        engine
            .enqueue(Enqueue::new(SendWelcome { email }))
            .await
            .unwrap();
    }
    assert!(engine.wait_idle(Duration::from_secs(30)).await.unwrap());
    let done = states(&db).await;
    assert_eq!(done.len(), 100, "every welcome and every follow-up job");
    assert!(done.iter().all(|(_, s)| s == "completed"), "{done:?}");

    // A scheduled job does not keep the queue busy; a running one does.
    engine
        .enqueue(Enqueue::new(Probe::new("later")).delay(Duration::from_secs(3600)))
        .await
        .unwrap();
    assert!(engine.wait_idle(Duration::from_secs(5)).await.unwrap());
    engine
        .enqueue(Enqueue::new(Probe::behave("slow", Behave::SleepMs(1500))))
        .await
        .unwrap();
    assert!(!engine.wait_idle(Duration::from_millis(200)).await.unwrap());
    assert!(engine.wait_idle(Duration::from_secs(10)).await.unwrap());
    engine.shutdown().await.unwrap();
}

/// The README shows the first test of this file verbatim.
#[test]
fn readme_shows_the_example_verbatim() {
    let me = include_str!("test_kit.rs");
    let begin = "// README: begin test-kit example\n";
    let start = me.find(begin).unwrap() + begin.len();
    let end = me.find("// README: end test-kit example").unwrap();
    let readme = include_str!("../../README.md");
    assert!(
        readme.contains(&me[start..end]),
        "README's \"Testing your jobs\" no longer shows tests/it/test_kit.rs's example"
    );
}

//! Priority lanes in action: password resets overtake a 5,000-mail newsletter backlog.
//!
//! Run it with `cargo run --example quickstart`. It uses `DATABASE_URL`, else
//! postgres://postgres@127.0.0.1:5432/test, else a throwaway server started from the
//! local PostgreSQL binaries. It recreates the `pglane_demo` schema on every run.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use pglane::{Engine, Enqueue, Job, JobContext, JobError, Lane};
use serde::{Deserialize, Serialize};
use tokio::sync::mpsc::{unbounded_channel, UnboundedSender};
use tracing_subscriber::EnvFilter;

const SCHEMA: &str = "pglane_demo";
const NEWSLETTER: usize = 5_000;
/// Enqueue a password reset once this many newsletter mails have started.
const RESETS: [(usize, &str); 3] = [(1_000, "alice"), (2_500, "bob"), (4_000, "carol")];

#[derive(Serialize, Deserialize)]
struct SendEmail {
    to: String,
    template: String,
}

/// What handlers report to `main`: a mail started (to, lane, priority, when), or was sent.
enum Event {
    Started(String, String, i16, Instant),
    Sent,
}

impl Job for SendEmail {
    const KIND: &'static str = "send_email";

    async fn run(self, ctx: JobContext) -> Result<(), JobError> {
        let events = ctx
            .data::<UnboundedSender<Event>>()
            .ok_or(JobError::cancel("no channel"))?;
        let started = Event::Started(self.to, ctx.lane().into(), ctx.priority(), Instant::now());
        let _ = events.send(started);
        tokio::time::sleep(Duration::from_millis(2)).await; // Talking to the SMTP server.
        let _ = events.send(Event::Sent);
        Ok(())
    }
}

#[actix::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    // pglane logs through `tracing`; `RUST_LOG=info` shows start, stop and outages too.
    tracing_subscriber::fmt()
        .with_env_filter(EnvFilter::try_from_default_env().unwrap_or_else(|_| "warn".into()))
        .init();
    // Keep `_server` alive: it is the throwaway PostgreSQL, if one had to be started
    // (`pglane::devdb` needs the `test-util` feature, on for pglane's own examples).
    let (url, _server) = pglane::devdb::database_url().await?;
    let (client, conn) = tokio_postgres::connect(&url, tokio_postgres::NoTls).await?;
    tokio::spawn(conn);
    let drop_demo = format!("DROP SCHEMA IF EXISTS {SCHEMA} CASCADE");
    client.batch_execute(&drop_demo).await?;
    pglane::migrate(&url, SCHEMA).await?;

    let (tx, mut events) = unbounded_channel();
    // By default a lane with a free slot also takes work more urgent than its range
    // (never less urgent); turned off here so each lane's summary shows its own jobs.
    let bulk = Lane::new("bulk")
        .priorities(10..)
        .concurrency(8)
        .work_conserving(false);
    let engine = Engine::builder(&url)
        .schema(SCHEMA)
        .lane(Lane::new("urgent").priorities(0..=9).concurrency(2))
        .lane(bulk)
        .register::<SendEmail>()
        .data(tx)
        .start()
        .await?;

    let mail = |to: String, template: &str| SendEmail {
        to,
        template: template.into(),
    };
    let newsletter = (0..NEWSLETTER)
        .map(|i| Enqueue::new(mail(format!("reader{i}@example.com"), "newsletter")).priority(100));
    let t = Instant::now();
    engine.enqueue_many(newsletter).await?;
    let ms = t.elapsed().as_millis();
    println!("enqueued {NEWSLETTER} newsletter mails in one statement in {ms} ms");

    // React to what the handlers report: enqueue each reset once enough of the backlog
    // has started, and stop once every mail has been sent.
    let (mut started, mut sent) = (0, 0);
    let mut enqueued_at = HashMap::new();
    while sent < NEWSLETTER + RESETS.len() {
        match events.recv().await.ok_or("the engine stopped")? {
            Event::Sent => sent += 1,
            Event::Started(_, _, 100, _) => {
                started += 1;
                if let Some((_, name)) = RESETS.iter().find(|r| r.0 == started) {
                    enqueued_at.insert(name.to_string(), Instant::now());
                    let reset = mail(name.to_string(), "password_reset");
                    engine.enqueue(Enqueue::new(reset).priority(0)).await?;
                    println!(
                        "{started} newsletter mails started; password reset for {name} enqueued"
                    );
                }
            }
            Event::Started(to, lane, _, at) => println!(
                "  password reset for {to} started on lane {lane} after waiting {} ms, \
                 while {} newsletter mails were still queued",
                at.duration_since(enqueued_at[&to]).as_millis(),
                NEWSLETTER - started
            ),
        }
    }

    let stats = engine.stats().await?;
    println!(
        "\nall {sent} mails sent\n\n{:<8} {:>11} {:>8} {:>10} {:>10}",
        "lane", "priorities", "started", "avg wait", "max wait"
    );
    for lane in &stats.lanes {
        let range = format!("{}..={}", lane.priorities.0, lane.priorities.1);
        let (n, max) = (lane.started, lane.max_wait.as_millis());
        let avg = lane.total_wait.as_millis() / u128::from(n.max(1));
        println!(
            "{:<8} {range:>11} {n:>8} {avg:>7} ms {max:>7} ms",
            lane.name
        );
    }
    engine.shutdown().await?;
    Ok(())
}

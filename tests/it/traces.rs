//! Traces: a `send <queue>` span per enqueue and a `process <queue>` span per run, and
//! the enqueuing side's W3C `traceparent` stored with the job (migration 3) so the run's
//! span links to it, across a retry and into jobs the job enqueues.

use std::time::Duration;

use pglane::{Enqueue, Error, Job, JobContext, JobError};
use serde::{Deserialize, Serialize};
use tokio::sync::mpsc;

use crate::support::*;

const INCOMING: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";

/// What a traced run saw.
#[derive(Debug, Clone)]
struct Seen {
    tag: String,
    attempt: i32,
    traceparent: Option<String>,
}

#[derive(Clone)]
struct SeenTx(mpsc::UnboundedSender<Seen>);

/// Fails its first attempt when told; the parent enqueues a child from its handler.
#[derive(Serialize, Deserialize)]
struct Traced {
    tag: String,
    fail_first: bool,
    child: bool,
}

impl Job for Traced {
    const KIND: &'static str = "traced";

    async fn run(self, ctx: JobContext) -> Result<(), JobError> {
        if let Some(tx) = ctx.data::<SeenTx>() {
            let _ = tx.0.send(Seen {
                tag: self.tag.clone(),
                attempt: ctx.attempt(),
                traceparent: ctx.traceparent().map(str::to_string),
            });
        }
        if self.fail_first && ctx.attempt() == 1 {
            return Err(JobError::retry("first attempt fails"));
        }
        if self.child {
            let child = Traced {
                tag: format!("{}-child", self.tag),
                fail_first: false,
                child: false,
            };
            ctx.enqueue(Enqueue::new(child))
                .await
                .map_err(JobError::retry)?;
        }
        Ok(())
    }
}

fn traced(tag: &str, fail_first: bool, child: bool) -> Enqueue<Traced> {
    Enqueue::new(Traced {
        tag: tag.into(),
        fail_first,
        child,
    })
}

async fn next(rx: &mut mpsc::UnboundedReceiver<Seen>) -> Seen {
    tokio::time::timeout(Duration::from_secs(10), rx.recv())
        .await
        .expect("a traced run within 10 s")
        .unwrap()
}

/// `(trace id, parent id)` of a traceparent.
fn ids(tp: &str) -> (&str, &str) {
    (&tp[3..35], &tp[36..52])
}

#[actix_rt::test]
async fn run_span_links_to_the_enqueuing_trace_context() {
    // The engine's actors run on this thread; its spans are printed as they open.
    let (lines, _capturing) = capture();
    let db = TestDb::new().await;
    let (tx, mut rx) = mpsc::unbounded_channel();
    let engine = db
        .engine()
        .register::<Traced>()
        .data(SeenTx(tx))
        .start()
        .await
        .unwrap();

    // 1. A context from upstream (say, an HTTP request's `traceparent` header) is
    //    stored with the job and survives a retry: both attempts see it.
    let id = engine
        .enqueue(traced("upstream", true, true).traceparent(INCOMING))
        .await
        .unwrap();
    let stored = db
        .query(&format!(
            "SELECT metadata->>'traceparent' FROM {{schema}}.jobs WHERE id = {id}"
        ))
        .await;
    assert_eq!(
        stored[0].get::<_, Option<String>>(0).as_deref(),
        Some(INCOMING)
    );
    let first = next(&mut rx).await;
    let second = next(&mut rx).await;
    assert_eq!((first.attempt, second.attempt), (1, 2));
    assert_eq!(first.traceparent.as_deref(), Some(INCOMING));
    assert_eq!(second.traceparent.as_deref(), Some(INCOMING));
    // 2. The job the handler enqueues continues the same trace, from a new span.
    let child = next(&mut rx).await;
    assert_eq!(child.tag, "upstream-child");
    let child_tp = child.traceparent.expect("the child has a trace context");
    assert_eq!(ids(&child_tp).0, ids(INCOMING).0, "same trace id");
    assert_ne!(ids(&child_tp).1, ids(INCOMING).1, "a new parent span id");

    // 3. With no context given, the enqueue span starts a trace; the run links to it.
    let plain = engine.enqueue(traced("plain", false, false)).await.unwrap();
    let run = next(&mut rx).await;
    let made = run.traceparent.expect("a trace context made at enqueue");

    // 4. A malformed context is refused before anything is written.
    let err = engine
        .enqueue(traced("bad", false, false).traceparent("00-nope"))
        .await
        .unwrap_err();
    assert!(matches!(err, Error::InvalidJob(_)), "{err}");
    assert!(err.to_string().contains("traceparent"), "{err}");
    engine.shutdown().await.unwrap();

    // The spans, as a subscriber saw them open: `send <queue>` carrying the context it
    // stored, and `process <queue>` per run, each linking to the stored context.
    let text = lines.text();
    let spans = |name: &str, event: &str, with: &[String]| {
        text.lines()
            .filter(|l| l.contains(&format!("otel.name={name}")) && l.contains(event))
            .filter(|l| with.iter().all(|w| l.contains(w.as_str())))
            .count()
    };
    let process = |id: i64, tp: &str| {
        vec![
            format!("messaging.message.id={id}"),
            format!("link.traceparent=\"{tp}\""),
            "messaging.system=\"pglane\"".to_string(),
            "messaging.destination.name=default".to_string(),
            "otel.kind=\"consumer\"".to_string(),
            "kind=\"traced\"".to_string(),
            "lane=\"default\"".to_string(),
        ]
    };
    let opened = "pglane::telemetry::spans: new";
    let closed = "pglane::telemetry::spans: close";
    let runs = |id, tp| spans("process default", opened, &process(id, tp));
    assert_eq!(runs(id, INCOMING), 2, "{text}");
    assert_eq!(runs(plain, &made), 1, "{text}");
    // The enqueue span records the context it stored and the id (seen when it closes).
    // (The child's enqueue span opens on a handler thread, which this capture misses.)
    let sent = [
        format!("messaging.message.id={plain}"),
        format!("traceparent=\"{made}\""),
        "otel.kind=\"producer\"".to_string(),
    ];
    assert_eq!(spans("send default", closed, &sent), 1, "{text}");
    db.cleanup().await;
}

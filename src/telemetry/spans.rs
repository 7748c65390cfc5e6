//! Spans following the OpenTelemetry messaging conventions: `send <queue>` around an
//! enqueue (kind producer) and `process <queue>` around a run (kind consumer). Span
//! names in `tracing` are static, so the conventional name goes in `otel.name`, which
//! `tracing-opentelemetry` uses as the span's name (as it uses `otel.kind`).

use tracing::field::Empty;
use tracing::Span;

use crate::enqueue::NewJob;
use crate::trace_context::TraceParent;

/// The span of an enqueue of `jobs` jobs of `kind` into `queue`; its
/// `messaging.message.id` is recorded once the id is known (single jobs).
pub(crate) fn send_span(queue: &str, kind: &str, jobs: usize) -> Span {
    tracing::info_span!(
        "send",
        "otel.name" = %format_args!("send {queue}"),
        "otel.kind" = "producer",
        "messaging.system" = "pglane",
        "messaging.operation.type" = "send",
        "messaging.destination.name" = %queue,
        "messaging.message.id" = Empty,
        "messaging.batch.message_count" = jobs,
        kind = %kind,
        traceparent = Empty,
    )
}

/// Gives jobs without a trace context the enqueue span's: a new trace, made only when
/// the span is recorded by a subscriber (otherwise nothing is stored and nothing is
/// spent). The context is recorded on the span as `traceparent`.
pub(crate) fn fill_trace_context(span: &Span, jobs: &mut [NewJob]) {
    if span.is_disabled() {
        return;
    }
    let mut made: Option<String> = None;
    for job in jobs.iter_mut().filter(|j| j.traceparent.is_none()) {
        let tp = made.get_or_insert_with(|| TraceParent::new_root().to_string());
        job.traceparent = Some(tp.clone());
    }
    if let Some(tp) = jobs.first().and_then(|j| j.traceparent.as_deref()) {
        span.record("traceparent", tp);
    }
}

/// What a run's span shows.
pub(crate) struct RunSpan<'a> {
    pub(crate) queue: &'a str,
    pub(crate) id: i64,
    pub(crate) kind: &'static str,
    pub(crate) attempt: i32,
    pub(crate) priority: i16,
    pub(crate) lane: &'a str,
    /// The trace context the job was enqueued under: the span links to it.
    pub(crate) link: Option<&'a str>,
}

/// The span of one run.
pub(crate) fn process_span(r: RunSpan<'_>) -> Span {
    tracing::info_span!(
        "process",
        "otel.name" = %format_args!("process {}", r.queue),
        "otel.kind" = "consumer",
        "messaging.system" = "pglane",
        "messaging.operation.type" = "process",
        "messaging.destination.name" = %r.queue,
        "messaging.message.id" = r.id,
        kind = r.kind,
        attempt = r.attempt,
        priority = r.priority,
        lane = r.lane,
        "link.traceparent" = r.link,
    )
}

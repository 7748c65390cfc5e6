-- pglane migration 3: a metadata column on live jobs, holding the W3C trace context of
-- the span that enqueued the job (`{"traceparent": "00-…"}`), so the run's span can link
-- to it. NULL when there is none (jobs enqueued with SQL `enqueue()`, or by COPY).
--
-- Safe to repeat and to run concurrently with itself: IF NOT EXISTS (the migrator also
-- applies it under an advisory lock and records the version). Adding a nullable column
-- without a default only changes the catalog: no table rewrite, a brief lock.
ALTER TABLE /* TEMPLATE: schema */jobs ADD COLUMN IF NOT EXISTS metadata jsonb;

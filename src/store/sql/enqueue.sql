-- Inserts a batch of validated jobs in one statement and, when any of them is due now
-- and $10 asks for it, sends one NOTIFY carrying the most urgent priority (the workers'
-- hint; skipped when the enqueuing engine knows the owning lane has a backlog). Scheduled jobs
-- are found by the poll. Jobs whose unique key is taken by a live job are skipped.
WITH ins AS (
    INSERT INTO /* TEMPLATE: schema */jobs
        (kind, queue, priority, args, max_attempts, run_at, timeout_ms, unique_key, metadata)
    SELECT k, q, p, a::jsonb, m, coalesce(r, now() + coalesce(d, 0) * interval '1 second'), t, u,
           -- The enqueuing span's trace context, for the run's span to link to.
           CASE WHEN tp IS NOT NULL THEN jsonb_build_object('traceparent', tp) END
    FROM unnest($1::text[], $2::text[], $3::smallint[], $4::text[], $5::integer[],
                $6::timestamptz[], $7::float8[], $8::integer[], $9::text[], $11::text[])
        AS x(k, q, p, a, m, r, d, t, u, tp)
    ON CONFLICT (unique_key) WHERE unique_key IS NOT NULL DO NOTHING
    RETURNING id, priority, run_at
),
summary AS (
    SELECT coalesce(array_agg(id ORDER BY id), '{}') AS ids,
           min(priority) FILTER (WHERE run_at <= now()) AS hint
    FROM ins
)
SELECT ids,
       CASE WHEN hint IS NOT NULL AND $10::bool THEN pg_notify('{{channel}}', hint::text) END AS notified
FROM summary

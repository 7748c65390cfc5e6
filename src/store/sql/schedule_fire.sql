-- Enqueues one job per tick in $2 (oldest first, each job's run_at its tick) and moves
-- the schedule's last tick from $3 to $4, in one statement: the UPDATE is a
-- compare-and-set on the last tick (and on the definition the ticks were computed
-- from, $5), and the INSERT reads its rows from the UPDATE. Engines racing for the same
-- ticks queue on the row lock; the second re-reads the row, finds the last tick moved,
-- updates nothing and so inserts nothing: one job per tick, with no leader. $6 counts
-- the ticks the missed-tick policy skipped. A unique key held by a live job inserts
-- nothing for that tick (the tick is still dealt with). Wakes workers with one NOTIFY
-- when a job is due.
WITH advanced AS (
    UPDATE /* TEMPLATE: schema */schedules
    SET last_tick = $4::timestamptz,
        runs = runs + cardinality($2::timestamptz[]),
        skipped = skipped + $6::bigint,
        last_run_at = CASE WHEN cardinality($2::timestamptz[]) > 0 THEN now() ELSE last_run_at END
    WHERE name = $1::text AND last_tick = $3::timestamptz AND declared_at = $5::timestamptz
    RETURNING kind, queue, priority, args, max_attempts, timeout_ms, unique_key
),
ins AS (
    INSERT INTO /* TEMPLATE: schema */jobs
        (kind, queue, priority, args, max_attempts, run_at, timeout_ms, unique_key)
    SELECT a.kind, a.queue, a.priority, a.args, a.max_attempts, t.tick, a.timeout_ms, a.unique_key
    FROM advanced AS a, unnest($2::timestamptz[]) WITH ORDINALITY AS t(tick, n)
    ORDER BY t.n
    ON CONFLICT (unique_key) WHERE unique_key IS NOT NULL DO NOTHING
    RETURNING id, priority, run_at
),
summary AS (
    SELECT min(priority) FILTER (WHERE run_at <= now()) AS hint FROM ins
)
SELECT (SELECT count(*) FROM advanced) > 0 AS won,
       (SELECT count(*) FROM ins) AS inserted,
       CASE WHEN hint IS NOT NULL THEN pg_notify('{{channel}}', hint::text) END AS notified
FROM summary

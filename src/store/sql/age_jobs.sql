-- Aging within a lane: raises jobs of the lane's priorities ($1 < priority <= $2, queue
-- $3) that have waited more than $4 ms past their run_at to the lane's most urgent
-- priority $1, keeping the priority they were enqueued with in base_priority. The claim
-- then takes them first among that priority (they are older than every job they now
-- tie with), with no change to its index scan, and never outside the lane's range.
--
-- Index-driven however large the lane's backlog: the recursive CTE walks the distinct
-- waiting priorities through jobs_claim_idx (one index probe each, a "loose index
-- scan"), and for each takes only its oldest entries, where the aged ones are (the
-- index is ordered by run_at within a priority), up to $5 in all. A plain range scan
-- would read every waiting job of the lane on every pass. The update finds its rows by
-- id through the primary key (`= ANY(ARRAY(…))`): joined to the CTE instead, the generic
-- plan expected LIMIT rows and hashed a sequential scan of the whole table
-- (tests/it/plans.rs).
WITH RECURSIVE prios(p) AS (
    SELECT min(priority)
    FROM /* TEMPLATE: schema */jobs
    WHERE state = 'available' AND priority > $1::smallint AND priority <= $2::smallint
    UNION ALL
    SELECT (SELECT min(priority)
            FROM /* TEMPLATE: schema */jobs
            WHERE state = 'available' AND priority > prios.p AND priority <= $2::smallint)
    FROM prios
    WHERE prios.p IS NOT NULL
),
aged AS MATERIALIZED (
    SELECT old.id
    FROM prios, LATERAL (
        SELECT id
        FROM /* TEMPLATE: schema */jobs
        WHERE state = 'available' AND priority = prios.p AND queue = $3::text
          AND run_at <= now() - $4::float8 * interval '1 millisecond'
        ORDER BY run_at, id
        LIMIT $5::bigint
        FOR UPDATE SKIP LOCKED
    ) AS old
    WHERE prios.p IS NOT NULL
    LIMIT $5::bigint
)
UPDATE /* TEMPLATE: schema */jobs AS j
SET base_priority = coalesce(j.base_priority, j.priority),
    priority      = $1::smallint
WHERE j.id = ANY(ARRAY(SELECT id FROM aged)) AND j.state = 'available'
RETURNING j.id

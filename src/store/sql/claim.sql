-- Claims up to $5 jobs for one lane, most urgent first, as a lease.
--
-- The MATERIALIZED CTE takes the row locks and is evaluated exactly once: written as
-- `WHERE id IN (subquery)` the planner may turn the subquery into a join and lock more
-- rows than LIMIT. SKIP LOCKED makes concurrent claimers pass over each other's rows
-- instead of queueing behind them, so no two workers get the same job, and ORDER BY
-- (matching jobs_claim_idx) means a claim never skips an eligible, unlocked, more urgent
-- job for a less urgent one. `state = 'available'` is a literal so that the partial index
-- is usable by the prepared (generic) plan. Lease times come from the database clock.
--
-- The one exception to that order: a rescued job (its worker died running it) is not
-- taken while this worker ($8) runs another rescued job. If one of them is a poison pill
-- that kills its process, the others would die with it again and again and be failed as
-- poison pills too. The subquery is uncorrelated, so it runs at most once per claim, and
-- only when a rescued job comes up.
--
-- The claim commits without waiting for its WAL flush (synchronous_commit off, for this
-- transaction only: set_config(…, true) lasts until the implicit transaction ends,
-- after the commit record is written). A claim lost in a database crash leaves its jobs
-- available, and the run's outcome is then fenced off by its token: at worst a run is
-- repeated, which at-least-once allows. The flush (about 0.2 ms idle, over 1 ms under
-- load here) was on the critical path of every slot refill: measured with it off,
-- pickup p50 0.6 -> 0.45 ms, urgent p50 under a backlog 0.7 -> 0.3 ms, a 16-slot
-- drain 11k -> 19k jobs/s. Outcomes and enqueues keep synchronous commits.
WITH picked AS MATERIALIZED (
    SELECT id
    FROM /* TEMPLATE: schema */jobs
    WHERE state = 'available'
      AND priority BETWEEN $1::smallint AND $2::smallint
      AND run_at <= now()
      AND queue = $3::text
      AND kind = ANY($4::text[])
      AND (rescues = 0 OR NOT EXISTS (
            SELECT 1 FROM /* TEMPLATE: schema */jobs AS r
            WHERE r.state = 'running' AND r.worker_id = $8::text AND r.rescues > 0))
    ORDER BY priority, run_at, id
    LIMIT $5::bigint
    FOR UPDATE SKIP LOCKED
)
UPDATE /* TEMPLATE: schema */jobs AS j
SET state       = 'running',
    attempt     = j.attempt + 1,
    lease_token = $6::bigint,
    lease_until = now() + $7::float8 * interval '1 millisecond',
    worker_id   = $8::text,
    started_at  = now()
FROM picked, (SELECT set_config('synchronous_commit', 'off', true)) AS async_commit
WHERE j.id = picked.id
RETURNING j.id, j.kind, j.priority, j.attempt, j.max_attempts, j.args, j.timeout_ms, j.run_at,
          j.rescues, j.metadata->>'traceparent'

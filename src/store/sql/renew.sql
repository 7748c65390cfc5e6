-- Extends the leases of jobs this worker is still running. Fenced like outcomes: a job
-- whose lease was lost is not returned, and its worker learns it no longer owns it.
-- `cancel` says a user asked to cancel the run: the backstop for a cancel notification
-- the worker missed (listener down, database outage).
--
-- Shaped like outcomes.sql, for the same reason: the state is tested as `<> 'available'`
-- (the only other live state is 'running') and the ids only through the join, so the
-- plan is a nested loop from the unnested rows into the primary key. With
-- `state = 'running'` or `id = ANY($1)`, statistics gathered while no job ran made the
-- planner put jobs outside and re-run the unnest once per running job: renewing 1,000
-- leases took 0.27 s (1.4 s with only `id = ANY` left), measured, against 19 ms this
-- way, and the cost grows with the square of the jobs running.
UPDATE /* TEMPLATE: schema */jobs AS j
SET lease_until = now() + $3::float8 * interval '1 millisecond'
FROM unnest($1::bigint[], $2::bigint[]) AS r(id, token)
WHERE j.id = r.id
  AND j.lease_token = r.token
  AND j.state <> 'available'
RETURNING j.id, j.cancel_request IS NOT NULL AS cancel

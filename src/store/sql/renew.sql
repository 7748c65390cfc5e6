-- Extends the leases of jobs this worker is still running. Fenced like outcomes: a job
-- whose lease was lost is not returned, and its worker learns it no longer owns it.
UPDATE /* TEMPLATE: schema */jobs AS j
SET lease_until = now() + $3::float8 * interval '1 millisecond'
FROM unnest($1::bigint[], $2::bigint[]) AS r(id, token)
WHERE j.id = ANY($1::bigint[])
  AND j.id = r.id
  AND j.lease_token = r.token
  AND j.state = 'running'
RETURNING j.id

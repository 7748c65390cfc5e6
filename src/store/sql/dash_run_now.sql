-- Makes the scheduled jobs of $1 due now (the dashboard's "run now"); jobs already due,
-- running or finished are left alone.
UPDATE /* TEMPLATE: schema */jobs
SET run_at = now()
WHERE id = ANY($1::bigint[]) AND state = 'available' AND run_at > now()
RETURNING id

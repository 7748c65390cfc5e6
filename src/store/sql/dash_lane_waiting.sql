-- Due jobs waiting in one lane's priority range, counted up to the cap $3 along the
-- claim index, with the oldest run_at among those read (exact when the count is under
-- the cap).
SELECT count(*), extract(epoch FROM now() - min(run_at))::float8
FROM (
    SELECT run_at
    FROM /* TEMPLATE: schema */jobs
    WHERE state = 'available' AND run_at <= now()
      AND priority BETWEEN $1::int AND $2::int
    ORDER BY priority, run_at, id
    LIMIT $3::bigint
) AS due

-- Cancels the live jobs of $1 (the dashboard's bulk cancel) through the schema's
-- cancel() function, exactly as every other door cancels: a job not started moves to
-- jobs_finished as `cancelled`, a running one gets a durable cancel request and its
-- worker a notification. Returns one row per job, with what happened ('cancelled' or
-- 'requested'). A job that finishes meanwhile makes cancel() raise: the caller then
-- goes one job at a time.
SELECT j.id, /* TEMPLATE: schema */cancel(j.id, reason => NULL, requested_by => $2::text)
FROM /* TEMPLATE: schema */jobs j
WHERE j.id = ANY($1::bigint[])
ORDER BY j.id

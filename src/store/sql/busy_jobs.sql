-- How busy a queue is for `Engine::wait_idle`: jobs of the given kinds that are due and
-- waiting, and jobs running (their outcome is not written yet). Scheduled jobs and
-- retries waiting for their backoff are not counted: nothing is to be done about them
-- yet.
SELECT count(*) FILTER (WHERE state = 'available' AND run_at <= now()) AS due,
       count(*) FILTER (WHERE state = 'running') AS running
FROM /* TEMPLATE: schema */jobs
WHERE queue = $1::text AND kind = ANY($2::text[])

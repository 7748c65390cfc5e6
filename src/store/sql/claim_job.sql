-- Claims one given job, for `pglane::testing` to run it inline: the same state change
-- as the engine's claim (running, attempt + 1, a lease), for a job picked by id instead
-- of by priority. Only an available job is taken, due or not (a test may run a
-- scheduled job now).
UPDATE /* TEMPLATE: schema */jobs AS j
SET state       = 'running',
    attempt     = j.attempt + 1,
    lease_token = $2::bigint,
    lease_until = now() + interval '1 hour',
    worker_id   = 'pglane-testing',
    started_at  = now()
WHERE j.id = $1::bigint AND j.state = 'available'
RETURNING j.id, j.kind, j.priority, j.attempt, j.max_attempts, j.args, j.timeout_ms, j.run_at,
          j.rescues, j.metadata->>'traceparent', j.queue

-- One job in full for the dashboard's detail page, live or finished. Each branch is a
-- primary-key look-up; parents and children (flows) are index probes on job_deps.
SELECT id, kind, queue, priority,
       CASE WHEN state = 'available' AND run_at > now() THEN 'scheduled' ELSE state END,
       attempt, max_attempts, run_at, created_at, started_at, NULL::timestamptz,
       jsonb_pretty(args), errors::text, worker_id, lease_until, unique_key, timeout_ms,
       rescues,
       ARRAY(SELECT e.parent FROM /* TEMPLATE: schema */job_deps AS e
             WHERE e.child = $1::bigint ORDER BY e.parent),
       ARRAY(SELECT e.child FROM /* TEMPLATE: schema */job_deps AS e
             WHERE e.parent = $1::bigint ORDER BY e.child)
FROM /* TEMPLATE: schema */jobs
WHERE id = $1::bigint
UNION ALL
SELECT id, kind, queue, priority, state, attempt, max_attempts, run_at, created_at,
       started_at, finished_at, jsonb_pretty(args), errors::text, worker_id,
       NULL::timestamptz, unique_key, timeout_ms, rescues,
       ARRAY(SELECT e.parent FROM /* TEMPLATE: schema */job_deps AS e
             WHERE e.child = $1::bigint ORDER BY e.parent),
       ARRAY(SELECT e.child FROM /* TEMPLATE: schema */job_deps AS e
             WHERE e.parent = $1::bigint ORDER BY e.child)
FROM /* TEMPLATE: schema */jobs_finished
WHERE id = $1::bigint

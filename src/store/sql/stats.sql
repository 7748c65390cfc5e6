-- Live jobs of one queue by state, priority and kind; `due` separates jobs waiting now
-- from scheduled ones. Aggregated into lanes by the caller.
SELECT state, priority, kind, run_at <= now() AS due, count(*) AS n,
       extract(epoch FROM now() - min(run_at))::float8 AS oldest_wait_s
FROM /* TEMPLATE: schema */jobs
WHERE queue = $1::text
GROUP BY state, priority, kind, due

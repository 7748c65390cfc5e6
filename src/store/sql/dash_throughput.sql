-- Per lane (priority ranges $1 names, $2 lows, $3 highs) and minute of the last hour:
-- jobs completed and failed, and the wait from due to started (p50, p99, seconds).
-- Reads only the last hour of jobs_finished, through its BRIN index on finished_at.
SELECT l.name, extract(epoch FROM date_trunc('minute', f.finished_at))::float8 AS minute,
       count(*) FILTER (WHERE f.state = 'completed'),
       count(*) FILTER (WHERE f.state = 'failed'),
       percentile_cont(0.5) WITHIN GROUP (ORDER BY extract(epoch FROM f.started_at - f.run_at))::float8,
       percentile_cont(0.99) WITHIN GROUP (ORDER BY extract(epoch FROM f.started_at - f.run_at))::float8
FROM /* TEMPLATE: schema */jobs_finished f
JOIN unnest($1::text[], $2::int[], $3::int[]) AS l(name, lo, hi)
  ON f.priority BETWEEN l.lo AND l.hi
WHERE f.finished_at > now() - interval '60 minutes'
GROUP BY 1, 2
ORDER BY 1, 2

-- Jobs of every queue by state, for operators. A live `available` job whose run_at is
-- still ahead counts as `scheduled`; `oldest_wait_s` is how long the oldest job that is
-- due now has been waiting. Finished jobs are counted while they are in retention.
SELECT queue,
       CASE WHEN state = 'available' AND run_at > now() THEN 'scheduled' ELSE state END AS state,
       count(*) AS n,
       extract(epoch FROM now() - min(run_at) FILTER (WHERE state = 'available' AND run_at <= now()))::float8
           AS oldest_wait_s
FROM /* TEMPLATE: schema */jobs
GROUP BY 1, 2
UNION ALL
SELECT queue, state, count(*), NULL
FROM /* TEMPLATE: schema */jobs_finished
GROUP BY 1, 2
ORDER BY 1, 2

-- Finished jobs of one queue still in retention, by state.
SELECT state, count(*) AS n
FROM /* TEMPLATE: schema */jobs_finished
WHERE queue = $1::text
GROUP BY state

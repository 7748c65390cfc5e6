-- The next job `pglane::testing`'s drain runs: live and available in the queue, of a
-- kind it runs, due (or any when $3 says to include scheduled jobs), with an id in $4
-- when only the jobs present at the start are drained; in the engine's claim order.
SELECT id
FROM /* TEMPLATE: schema */jobs
WHERE state = 'available' AND queue = $1::text AND kind = ANY($2::text[])
  AND ($3::boolean OR run_at <= now())
  AND ($4::bigint[] IS NULL OR id = ANY($4::bigint[]))
ORDER BY priority, run_at, id
LIMIT 1

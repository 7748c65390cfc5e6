-- Live, available jobs of one kind (due or scheduled), for `pglane::testing`'s
-- `enqueued` look-ups and assertions, oldest first.
SELECT id, queue, priority, args, attempt, max_attempts, run_at, run_at > now() AS scheduled,
       unique_key
FROM /* TEMPLATE: schema */jobs
WHERE kind = $1::text AND state = 'available'
ORDER BY id

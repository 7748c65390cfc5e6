-- Deletes the finished jobs of $1 (the dashboard's "delete"): live jobs are never
-- deleted, they are cancelled.
DELETE FROM /* TEMPLATE: schema */jobs_finished
WHERE id = ANY($1::bigint[])
RETURNING id

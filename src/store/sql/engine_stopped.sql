-- An engine stopping removes its heartbeat row, so it leaves the dashboard at once.
DELETE FROM /* TEMPLATE: schema */engines
WHERE worker_id = $1::text

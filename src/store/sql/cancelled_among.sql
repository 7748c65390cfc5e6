-- Which of these jobs, whose leases a renewal found lost, ended `cancelled` by a user:
-- their runs (on a worker that was frozen or cut off when the cancel came, and missed
-- the notification) are told to stop instead of running on to their timeout. Runs only
-- when a renewal lost leases, so rarely.
SELECT id
FROM /* TEMPLATE: schema */jobs_finished
WHERE id = ANY($1::bigint[]) AND state = 'cancelled'

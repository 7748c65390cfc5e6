-- Sends payload $2 on channel $1 through the pool: the listener's end-to-end health check.
-- A listener connection can outlive a failover and stay attached to another server than
-- the one the pool writes to; only a notification sent through the pool and heard by the
-- listener proves the two meet. pg_notify() rather than NOTIFY, because NOTIFY takes no
-- parameters.
SELECT pg_notify($1, $2)

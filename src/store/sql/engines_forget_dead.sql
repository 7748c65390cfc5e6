-- Deletes the rows of engines that stopped without saying so (killed, frozen, cut
-- off): no heartbeat for ten of their own intervals, and at least a minute. Readers
-- already hide them after three intervals; this only keeps the table small.
DELETE FROM /* TEMPLATE: schema */engines
WHERE seen_at < now() - greatest(make_interval(secs => interval_ms * 10 / 1000.0), interval '1 minute')

-- Every lane control operators have set (see migration 6), for the dashboard's lanes.
SELECT queue, lane, paused, concurrency, version, updated_at, updated_by
FROM /* TEMPLATE: schema */lane_controls
ORDER BY queue, lane

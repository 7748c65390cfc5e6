-- Marks the schedules an engine declares as active for a while longer (the engine
-- calls this well within that while). A schedule no running engine declares any more
-- (removed from the code) stops firing, and shows as inactive once this lapses.
UPDATE /* TEMPLATE: schema */schedules
SET active_until = greatest(active_until, now() + $2::float8 * interval '1 millisecond')
WHERE name = ANY($1::text[])

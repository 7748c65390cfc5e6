-- The job tables' sizes from the catalog (no scan): the dashboard counts exactly below a
-- threshold and shows estimates from table statistics above it.
SELECT c.relname::text, c.relpages::bigint, greatest(c.reltuples, 0)::float8
FROM pg_class c
JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE n.nspname = $1::text AND c.relname IN ('jobs', 'jobs_finished')

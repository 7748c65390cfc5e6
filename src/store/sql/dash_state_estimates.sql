-- Estimated jobs per state from the planner's statistics (the most common values of
-- `state` times the table's row estimate): what the overview shows when exact counts
-- would scan millions of rows. Live `available` includes scheduled jobs here.
SELECT s.tablename::text, v.state, (v.freq * greatest(c.reltuples, 0))::float8
FROM pg_stats s
JOIN pg_namespace n ON n.nspname = s.schemaname
JOIN pg_class c ON c.relnamespace = n.oid AND c.relname = s.tablename
CROSS JOIN LATERAL unnest(s.most_common_vals::text::text[], s.most_common_freqs) AS v(state, freq)
WHERE s.schemaname = $1::text AND s.attname = 'state' AND s.tablename IN ('jobs', 'jobs_finished')

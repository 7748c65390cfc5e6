-- Dead row versions in the live job table, as counted by the statistics system (updated
-- within about a second of each commit).
SELECT coalesce(n_dead_tup, 0)
FROM pg_stat_user_tables
WHERE relid = '/* TEMPLATE: schema */jobs'::regclass

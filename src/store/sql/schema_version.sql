-- The schema's version: the newest migration applied with every one before it applied
-- too. Versions are applied by number, so a schema migrated by a build that lacked one
-- (say 3, of 1 to 6) is at 2 until `migrate` applies it, and an engine that needs it
-- refuses to start rather than run statements on a column that is not there.
SELECT min(g) - 1
FROM generate_series(1, (SELECT coalesce(max(version), 0) + 1
                         FROM /* TEMPLATE: schema */pglane_migrations)) AS g
WHERE g NOT IN (SELECT version FROM /* TEMPLATE: schema */pglane_migrations)

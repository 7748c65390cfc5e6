-- Serialises the migrators of one schema ($1 is the key `pglane:migrate:<schema>`) until
-- the migrating transaction ends: a second migrator waits, then finds every version
-- applied. Taken before CREATE SCHEMA IF NOT EXISTS, which itself races (a unique
-- violation on pg_namespace) when run concurrently.
SELECT pg_advisory_xact_lock(hashtext($1))

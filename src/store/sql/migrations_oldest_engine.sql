-- The oldest engine (by the schema version it was built for) that may run against the
-- schema once a migration is applied; added to records made before pglane kept it
-- (their rows stay NULL and count as their own version). Under migration_lock.sql.
ALTER TABLE /* TEMPLATE: schema */pglane_migrations ADD COLUMN IF NOT EXISTS oldest_engine integer

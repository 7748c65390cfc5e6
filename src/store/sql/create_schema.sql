-- Creates the schema that holds every pglane table, if missing (under migration_lock.sql).
-- The name is validated as an identifier, so quoting it is enough.
CREATE SCHEMA IF NOT EXISTS "{{schema}}"

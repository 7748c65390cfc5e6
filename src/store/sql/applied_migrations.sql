-- The versions already applied to the schema, read under migration_lock.sql so that no
-- other migrator adds one meanwhile.
SELECT version FROM /* TEMPLATE: schema */pglane_migrations

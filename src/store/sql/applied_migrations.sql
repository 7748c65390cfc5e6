-- The versions already applied to the schema, with the oldest engine each allows, read
-- under migration_lock.sql so that no other migrator adds one meanwhile (the column
-- exists: migrations_oldest_engine.sql runs first).
SELECT version, oldest_engine FROM /* TEMPLATE: schema */pglane_migrations

-- The newest migration applied to the schema.
SELECT coalesce(max(version), 0) FROM /* TEMPLATE: schema */pglane_migrations

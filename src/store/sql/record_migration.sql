-- Records migration $1 (named $2, allowing engines built for schema version $3 or later)
-- as applied, in the transaction that applied it: a migration that fails leaves no
-- record and nothing else behind.
INSERT INTO /* TEMPLATE: schema */pglane_migrations (version, name, oldest_engine) VALUES ($1, $2, $3)

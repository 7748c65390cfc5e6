-- Records migration $1 (named $2) as applied, in the transaction that applied it: a
-- migration that fails leaves no record and nothing else behind.
INSERT INTO /* TEMPLATE: schema */pglane_migrations (version, name) VALUES ($1, $2)

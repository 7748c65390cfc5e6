-- The schema's migration record: one row per applied migration. An engine refuses to
-- start unless the newest version is the one it was built for (schema_version.sql).
CREATE TABLE IF NOT EXISTS /* TEMPLATE: schema */pglane_migrations (
    version    integer     PRIMARY KEY,
    name       text        NOT NULL,
    applied_at timestamptz NOT NULL DEFAULT now()
)

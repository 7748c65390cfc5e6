-- The migrations applied to the schema, each with the oldest engine (by schema version)
-- it allows: an engine checks both before it claims (see schema_fit.rs). Read through
-- to_jsonb so a record written before pglane kept `oldest_engine` answers NULL there
-- instead of failing with undefined_column.
SELECT version, (to_jsonb(m) ->> 'oldest_engine')::integer
FROM /* TEMPLATE: schema */pglane_migrations AS m

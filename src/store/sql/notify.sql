-- Wakes the workers of every lane listening on the schema's channel. An empty payload
-- carries no priority, so every lane takes it as a bare hint and claims.
SELECT pg_notify('{{channel}}', '')

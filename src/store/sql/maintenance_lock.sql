-- Makes this session the schema's maintenance leader, or answers false at once when
-- another engine is ($1 is the key `pglane:maintenance:<schema>`), so one engine per
-- cluster rescues and prunes. A session lock, not a transaction one: each statement of
-- the pass then commits on its own and no transaction pins the xmin horizon for the
-- whole pass (see Store::maintenance_pass). Released by maintenance_unlock.sql, or by
-- the server when the connection is discarded.
SELECT pg_try_advisory_lock(hashtext($1))

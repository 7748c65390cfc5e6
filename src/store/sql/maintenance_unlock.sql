-- Ends a maintenance pass: releases the session lock taken by maintenance_lock.sql
-- ($1 is the same key), so the connection goes back to the pool holding nothing.
SELECT pg_advisory_unlock(hashtext($1))

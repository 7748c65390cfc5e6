-- Whether the server has no connection slot left for ordinary roles: client backends
-- against max_connections minus the slots reserved for superusers. Any role can read
-- the count (pg_stat_activity hides only other roles' query texts). Checked by each
-- engine's maintenance pass; a full server makes every engine shed its idle spare
-- connections and its listener (see Store::short_of_connections).
SELECT count(*) FILTER (WHERE backend_type = 'client backend')
       >= current_setting('max_connections')::int
          - current_setting('superuser_reserved_connections')::int
FROM pg_stat_activity

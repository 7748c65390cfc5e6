-- The newest job id, live or finished (0 when there is none): where the dashboard's
-- bounded search of a filtered list starts. Two backward steps of the primary keys.
SELECT greatest((SELECT max(id) FROM /* TEMPLATE: schema */jobs),
                (SELECT max(id) FROM /* TEMPLATE: schema */jobs_finished), 0)::bigint

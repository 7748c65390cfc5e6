-- How many earlier runs of a job were found blocking their handler thread past their
-- timeout (errors recorded with cause 'stuck'): a job that keeps doing it is failed like
-- a poison pill instead of taking one more thread per attempt. Read only when a stuck
-- run is found (rare), never on the hot path.
SELECT count(*)
FROM /* TEMPLATE: schema */jobs AS j
CROSS JOIN LATERAL jsonb_array_elements(j.errors) AS e
WHERE j.id = $1::bigint
  AND e->>'cause' = 'stuck'

-- The jobs a drain without recursion runs: those available in the queue, of the kinds
-- it runs, when it starts.
SELECT id
FROM /* TEMPLATE: schema */jobs
WHERE state = 'available' AND queue = $1::text AND kind = ANY($2::text[])

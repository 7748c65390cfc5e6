-- Runs first in the transaction of a bulk COPY. Answers the transaction's now() (the
-- clock the copied rows' run_at is computed from) and, when some copied job is due at
-- once, queues the one NOTIFY carrying the most urgent priority ($1; NULL sends none).
-- A NOTIFY is delivered at commit, so it wakes workers only if the COPY commits.
SELECT now(),
       CASE WHEN $1::smallint IS NOT NULL
            THEN pg_notify('{{channel}}', $1::smallint::text)
       END

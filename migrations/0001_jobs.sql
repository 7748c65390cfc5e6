-- pglane migration 1: the live job table, the history table, and enqueue().
--
-- `/* TEMPLATE: schema */` is replaced by the quoted schema name and `{{channel}}` by the
-- validated NOTIFY channel when the migration is applied.

-- Live jobs only (available or running). Finished jobs move to jobs_finished so that the
-- claim's index and the table the claim scans stay small however much history is kept.
CREATE TABLE /* TEMPLATE: schema */jobs (
    id           bigint      GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    kind         text        NOT NULL,
    queue        text        NOT NULL DEFAULT 'default',
    priority     smallint    NOT NULL DEFAULT 100 CHECK (priority >= 0),
    args         jsonb       NOT NULL DEFAULT '{}',
    state        text        NOT NULL DEFAULT 'available' CHECK (state IN ('available', 'running')),
    attempt      integer     NOT NULL DEFAULT 0 CHECK (attempt >= 0),
    max_attempts integer     NOT NULL DEFAULT 20 CHECK (max_attempts BETWEEN 1 AND 1000),
    run_at       timestamptz NOT NULL DEFAULT now() CHECK (isfinite(run_at)),
    timeout_ms   integer     CHECK (timeout_ms BETWEEN 1 AND 86400000),
    unique_key   text,
    lease_token  bigint,
    lease_until  timestamptz,
    worker_id    text,
    rescues      integer     NOT NULL DEFAULT 0,
    errors       jsonb       NOT NULL DEFAULT '[]',
    created_at   timestamptz NOT NULL DEFAULT now(),
    started_at   timestamptz
) WITH (
    -- Every job is inserted, updated and deleted within seconds: vacuum early and
    -- without throttling, or dead tuples pile up under the claim's index scan.
    autovacuum_vacuum_scale_factor = 0.0,
    autovacuum_vacuum_threshold = 2000,
    autovacuum_vacuum_insert_scale_factor = 0.0,
    autovacuum_vacuum_insert_threshold = 10000,
    autovacuum_analyze_scale_factor = 0.02,
    autovacuum_vacuum_cost_delay = 0
);

-- Matches the claim's ORDER BY; partial, so running jobs are not in it.
CREATE INDEX jobs_claim_idx ON /* TEMPLATE: schema */jobs (priority, run_at, id)
    WHERE state = 'available';

-- Finds expired leases for the rescuer.
CREATE INDEX jobs_lease_idx ON /* TEMPLATE: schema */jobs (lease_until)
    WHERE state = 'running';

-- At most one live job per unique key.
CREATE UNIQUE INDEX jobs_unique_key_idx ON /* TEMPLATE: schema */jobs (unique_key)
    WHERE unique_key IS NOT NULL;

-- Finished jobs (completed, failed, cancelled), kept for the retention period and pruned
-- in batches.
CREATE TABLE /* TEMPLATE: schema */jobs_finished (
    id           bigint      PRIMARY KEY,
    kind         text        NOT NULL,
    queue        text        NOT NULL,
    priority     smallint    NOT NULL,
    args         jsonb       NOT NULL,
    state        text        NOT NULL CHECK (state IN ('completed', 'failed', 'cancelled')),
    attempt      integer     NOT NULL,
    max_attempts integer     NOT NULL,
    run_at       timestamptz NOT NULL,
    timeout_ms   integer,
    unique_key   text,
    worker_id    text,
    rescues      integer     NOT NULL,
    errors       jsonb       NOT NULL,
    created_at   timestamptz NOT NULL,
    started_at   timestamptz,
    finished_at  timestamptz NOT NULL DEFAULT now()
) WITH (
    autovacuum_vacuum_insert_scale_factor = 0.0,
    autovacuum_vacuum_insert_threshold = 50000,
    autovacuum_vacuum_cost_delay = 0
);

-- Rows arrive in finished_at order, so a BRIN index serves pruning at almost no cost.
CREATE INDEX jobs_finished_at_idx ON /* TEMPLATE: schema */jobs_finished USING brin (finished_at);

-- Every job, live or finished, for operators and "was it sent?" questions.
CREATE VIEW /* TEMPLATE: schema */all_jobs AS
    SELECT id, kind, queue, priority, args, state, attempt, max_attempts, run_at, unique_key,
           worker_id, rescues, errors, created_at, started_at, NULL::timestamptz AS finished_at
    FROM /* TEMPLATE: schema */jobs
    UNION ALL
    SELECT id, kind, queue, priority, args, state, attempt, max_attempts, run_at, unique_key,
           worker_id, rescues, errors, created_at, started_at, finished_at
    FROM /* TEMPLATE: schema */jobs_finished;

-- Enqueue from any client: psql, another service, a trigger.
--   SELECT pglane.enqueue('send_email', '{"to": "a@b.c"}', priority => 5);
-- Validates like the Rust API (raising SQLSTATE 22023 with a `pglane:` message), inserts,
-- and wakes the workers with one NOTIFY per transaction (a later, more urgent job in the
-- same transaction sends one more). Returns the job id, or the live job's id when
-- `unique_key` is already taken.
CREATE FUNCTION /* TEMPLATE: schema */enqueue(
    kind         text,
    args         jsonb       DEFAULT '{}',
    priority     integer     DEFAULT 100,
    run_at       timestamptz DEFAULT NULL,
    max_attempts integer     DEFAULT 20,
    queue        text        DEFAULT 'default',
    unique_key   text        DEFAULT NULL,
    timeout_ms   integer     DEFAULT NULL,
    delay        interval    DEFAULT NULL
) RETURNS bigint
LANGUAGE plpgsql
AS $fn$
#variable_conflict use_column
DECLARE
    v_id bigint;
    v_run_at timestamptz;
    v_notified text;
BEGIN
    IF enqueue.kind IS NULL OR enqueue.kind !~ '^[A-Za-z0-9_.:/-]{1,255}$' THEN
        RAISE EXCEPTION 'pglane: invalid kind %: use 1 to 255 ASCII letters, digits and _ . : / -', quote_nullable(enqueue.kind)
            USING ERRCODE = '22023';
    END IF;
    IF enqueue.queue IS NULL OR enqueue.queue !~ '^[a-z_][a-z0-9_]{0,62}$' THEN
        RAISE EXCEPTION 'pglane: invalid queue %: use 1 to 63 of a-z, 0-9, _', quote_nullable(enqueue.queue)
            USING ERRCODE = '22023';
    END IF;
    IF enqueue.args IS NULL THEN
        RAISE EXCEPTION 'pglane: args must not be NULL (use ''{}'')' USING ERRCODE = '22023';
    END IF;
    IF octet_length(enqueue.args::text) > 1048576 THEN
        RAISE EXCEPTION 'pglane: args are over the 1048576-byte limit' USING ERRCODE = '22023';
    END IF;
    IF enqueue.priority IS NULL OR enqueue.priority NOT BETWEEN 0 AND 32767 THEN
        RAISE EXCEPTION 'pglane: priority % is out of range: use 0 (most urgent) to 32767', enqueue.priority
            USING ERRCODE = '22023';
    END IF;
    IF enqueue.max_attempts IS NULL OR enqueue.max_attempts NOT BETWEEN 1 AND 1000 THEN
        RAISE EXCEPTION 'pglane: max_attempts % is out of range: use 1 to 1000', enqueue.max_attempts
            USING ERRCODE = '22023';
    END IF;
    IF enqueue.timeout_ms IS NOT NULL AND enqueue.timeout_ms NOT BETWEEN 1 AND 86400000 THEN
        RAISE EXCEPTION 'pglane: timeout_ms % is out of range: use 1 to 86400000', enqueue.timeout_ms
            USING ERRCODE = '22023';
    END IF;
    IF enqueue.unique_key IS NOT NULL AND octet_length(enqueue.unique_key) NOT BETWEEN 1 AND 255 THEN
        RAISE EXCEPTION 'pglane: unique_key must be 1 to 255 bytes' USING ERRCODE = '22023';
    END IF;
    v_run_at := coalesce(enqueue.run_at, now() + coalesce(enqueue.delay, interval '0'));
    IF NOT isfinite(v_run_at) OR v_run_at > now() + interval '10 years' THEN
        RAISE EXCEPTION 'pglane: run_at % is out of range: schedule jobs at most 10 years ahead', v_run_at
            USING ERRCODE = '22023';
    END IF;

    INSERT INTO /* TEMPLATE: schema */jobs
        (kind, queue, priority, args, max_attempts, run_at, timeout_ms, unique_key)
    VALUES
        (enqueue.kind, enqueue.queue, enqueue.priority, enqueue.args, enqueue.max_attempts,
         v_run_at, enqueue.timeout_ms, enqueue.unique_key)
    ON CONFLICT (unique_key) WHERE unique_key IS NOT NULL DO NOTHING
    RETURNING id INTO v_id;

    IF v_id IS NULL THEN
        SELECT j.id INTO v_id FROM /* TEMPLATE: schema */jobs j WHERE j.unique_key = enqueue.unique_key;
        RETURN v_id;
    END IF;

    -- One NOTIFY per transaction, carrying the most urgent priority so far; scheduled
    -- jobs are found by the workers' poll instead.
    IF v_run_at <= now() THEN
        v_notified := current_setting('pglane.notified_{{channel}}', true);
        IF v_notified IS NULL OR v_notified = '' OR v_notified::integer > enqueue.priority THEN
            PERFORM set_config('pglane.notified_{{channel}}', enqueue.priority::text, true);
            PERFORM pg_notify('{{channel}}', enqueue.priority::text);
        END IF;
    END IF;
    RETURN v_id;
END
$fn$;

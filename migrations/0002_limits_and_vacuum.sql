-- pglane migration 2: enqueue() checks exactly what the Rust API checks, and VACUUM
-- never truncates the job tables.
--
-- Safe to repeat and to run concurrently with itself: every statement replaces or sets
-- (the migrator also applies it under an advisory lock and records the version).
-- Limit markers (`{{max_args_depth}}` and the like) are filled from the constants in
-- `pglane::validate` when the migration is applied: the Rust API and this function share
-- one source of limits.

-- VACUUM never truncates the job tables. Truncation takes an ACCESS EXCLUSIVE lock to
-- give the empty pages at a table's end back to the operating system; on the live
-- table, where claims and outcomes never stop and every claim writes new row versions
-- at the end, it tried for seconds at a time (a 1M-job drain showed the maintenance
-- VACUUM in phase VacuumTruncate for 3.2 s) and, whenever it got the lock, every claim
-- and outcome waited behind it. The pages are reused by later jobs instead.
ALTER TABLE /* TEMPLATE: schema */jobs SET (vacuum_truncate = false);
ALTER TABLE /* TEMPLATE: schema */jobs_finished SET (vacuum_truncate = false);

-- Enqueue from any client: psql, another service, a trigger.
--   SELECT pglane.enqueue('send_email', '{"to": "a@b.c"}', priority => 5);
-- Validates exactly like the Rust API (raising SQLSTATE 22023 with a `pglane:` message;
-- the integration suite runs one table of cases through both doors), inserts, and wakes
-- the workers with one NOTIFY per transaction (a later, more urgent job in the same
-- transaction sends one more). Returns the job id, or the live job's id when
-- `unique_key` is already taken.
--
-- Version 1 missed three rules: args nested deeper than the Rust limit (past 128
-- levels a Rust worker cannot even decode them), numbers too large for a 64-bit float
-- (likewise undecodable), and schedules before 1970 (`run_at => '1900-01-01'`,
-- `delay => '-60 years'`), which jumped ahead of every job of their priority.
CREATE OR REPLACE FUNCTION /* TEMPLATE: schema */enqueue(
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
    v_text text;
    v_bytes bigint;
    v_bare text;
BEGIN
    IF enqueue.kind IS NULL OR octet_length(enqueue.kind) NOT BETWEEN 1 AND {{max_kind_bytes}}
       OR enqueue.kind !~ '^[A-Za-z0-9_.:/-]+$' THEN
        RAISE EXCEPTION 'pglane: invalid kind %: use 1 to {{max_kind_bytes}} ASCII letters, digits and _ . : / -',
            quote_nullable(left(enqueue.kind, 80))
            USING ERRCODE = '22023';
    END IF;
    IF enqueue.queue IS NULL OR octet_length(enqueue.queue) NOT BETWEEN 1 AND {{max_identifier_bytes}}
       OR enqueue.queue !~ '^[a-z_][a-z0-9_]*$' THEN
        RAISE EXCEPTION 'pglane: invalid queue %: use 1 to {{max_identifier_bytes}} bytes of a-z, 0-9, _, not starting with a digit',
            quote_nullable(left(enqueue.queue, 80))
            USING ERRCODE = '22023';
    END IF;
    -- jsonb itself already refuses what Rust checks by hand: NUL characters and
    -- non-finite numbers cannot be written in a jsonb value.
    IF enqueue.args IS NULL THEN
        RAISE EXCEPTION 'pglane: args must not be NULL (use ''{}'')' USING ERRCODE = '22023';
    END IF;
    -- The Rust API measures compact JSON (serde_json); jsonb's text form adds a space
    -- after every ',' and ':' between items. Only when that form is over the limit are
    -- those spaces counted off (strings removed first, so separators are all that is
    -- left of ',' and ':'), which keeps ordinary enqueues at one length check.
    v_text := enqueue.args::text;
    v_bytes := octet_length(v_text);
    IF v_bytes > {{max_args_bytes}} THEN
        v_bare := regexp_replace(v_text, '"(?:[^"\\]|\\.)*"', '', 'g');
        v_bytes := v_bytes - (length(v_bare) - length(translate(v_bare, ',:', '')));
        IF v_bytes > {{max_args_bytes}} THEN
            RAISE EXCEPTION 'pglane: args are % bytes, over the {{max_args_bytes}}-byte limit', v_bytes
                USING ERRCODE = '22023';
        END IF;
    END IF;
    -- An array or object at level {{max_args_depth}} (the top is level 0) is nested one
    -- level too deep.
    IF jsonb_path_exists(enqueue.args,
           ('strict $.**{' || {{max_args_depth}} || '} ? (@.type() == "object" || @.type() == "array")')::jsonpath) THEN
        RAISE EXCEPTION 'pglane: args nest deeper than {{max_args_depth}} levels' USING ERRCODE = '22023';
    END IF;
    -- jsonb writes numbers out in full, so one beyond a 64-bit float's range (about
    -- 1.8e308) shows as a run of at least 309 digits: look for such a run in the text
    -- first (a fifth of the cost of walking every number of a large document).
    IF v_text ~ '[0-9]{255}[0-9]{54}' AND jsonb_path_exists(enqueue.args,
           'strict $.** ? (@.type() == "number" && (@ > 1.7976931348623157e308 || @ < -1.7976931348623157e308))') THEN
        RAISE EXCEPTION 'pglane: args contain a number beyond the range of a 64-bit float' USING ERRCODE = '22023';
    END IF;
    IF enqueue.priority IS NULL OR enqueue.priority NOT BETWEEN 0 AND {{max_priority}} THEN
        RAISE EXCEPTION 'pglane: priority % is out of range: use 0 (most urgent) to {{max_priority}}', enqueue.priority
            USING ERRCODE = '22023';
    END IF;
    IF enqueue.max_attempts IS NULL OR enqueue.max_attempts NOT BETWEEN 1 AND {{max_attempts}} THEN
        RAISE EXCEPTION 'pglane: max_attempts % is out of range: use 1 to {{max_attempts}}', enqueue.max_attempts
            USING ERRCODE = '22023';
    END IF;
    IF enqueue.timeout_ms IS NOT NULL AND enqueue.timeout_ms NOT BETWEEN 1 AND {{max_timeout_ms}} THEN
        RAISE EXCEPTION 'pglane: timeout_ms % is out of range: use 1 to {{max_timeout_ms}}', enqueue.timeout_ms
            USING ERRCODE = '22023';
    END IF;
    IF enqueue.unique_key IS NOT NULL
       AND octet_length(enqueue.unique_key) NOT BETWEEN 1 AND {{max_unique_key_bytes}} THEN
        RAISE EXCEPTION 'pglane: unique_key must be 1 to {{max_unique_key_bytes}} bytes' USING ERRCODE = '22023';
    END IF;
    -- Like the Rust API: a delay is a duration from now, never negative, and a schedule
    -- (given, or now + delay) lies between 1970 and {{max_schedule_ahead_s}} s from now.
    -- Both are checked when both are given; run_at wins.
    IF enqueue.delay IS NOT NULL AND (enqueue.delay < interval '0'
       OR enqueue.delay > {{max_schedule_ahead_s}} * interval '1 second') THEN
        RAISE EXCEPTION 'pglane: delay % is out of range: use 0 to 10 years (use run_at for a time in the past)', enqueue.delay
            USING ERRCODE = '22023';
    END IF;
    v_run_at := coalesce(enqueue.run_at, now() + coalesce(enqueue.delay, interval '0'));
    IF NOT isfinite(v_run_at) OR v_run_at < timestamptz 'epoch'
       OR v_run_at > now() + {{max_schedule_ahead_s}} * interval '1 second' THEN
        RAISE EXCEPTION 'pglane: run_at % is out of range: schedule jobs from 1970 up to 10 years ahead', v_run_at
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

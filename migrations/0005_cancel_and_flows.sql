-- pglane migration 5: cancelling running jobs, and dependencies between jobs.
--
-- Safe to repeat and to run concurrently with itself: every statement adds if missing,
-- replaces or sets (the migrator also applies it under an advisory lock and records the
-- version).

-- A user's request to cancel a running job: {"at", "by", "reason"}. Durable, so that
-- whatever happens to the worker (a lost notification, a database outage, a frozen or
-- dead process), the run ends `cancelled`: the outcome statement, the rescuer and the
-- lease renewal all read it. NULL on every job nobody asked to cancel.
ALTER TABLE /* TEMPLATE: schema */jobs ADD COLUMN IF NOT EXISTS cancel_request jsonb;

-- The history entry a cancelled job gets: who asked, why, at which attempt.
CREATE OR REPLACE FUNCTION /* TEMPLATE: schema */cancel_entry(request jsonb, attempt integer)
RETURNS jsonb
LANGUAGE sql IMMUTABLE
AS $fn$
    SELECT jsonb_build_array(jsonb_build_object(
        'attempt', attempt, 'at', request -> 'at', 'cause', 'cancel',
        'by', request ->> 'by', 'reason', request ->> 'reason',
        'error', format('cancelled by %s%s', request ->> 'by',
                        CASE WHEN coalesce(request ->> 'reason', '') = '' THEN ''
                             ELSE ': ' || (request ->> 'reason') END)))
$fn$;

-- Cancels a job, from any client:
--   SELECT pglane.cancel(42, reason => 'customer left', requested_by => 'ops/alice');
-- A job that has not started (available, scheduled, or waiting on parents) moves to
-- jobs_finished as `cancelled` at once: returns 'cancelled'. A running job gets a durable
-- cancel request and its worker a notification carrying the job id and the lease token
-- (so only that attempt is cancelled): returns 'requested', and the run ends `cancelled`
-- whatever its handler answers, unless its outcome was written first. A finished job
-- raises SQLSTATE 55000, an unknown id P0002, and nothing is written.
--
-- The row lock (FOR UPDATE) orders the request against the run's outcome, the rescuer
-- and the claim: whichever commits first wins, and the other sees its result.
CREATE OR REPLACE FUNCTION /* TEMPLATE: schema */cancel(
    id           bigint,
    reason       text DEFAULT NULL,
    requested_by text DEFAULT NULL
) RETURNS text
LANGUAGE plpgsql
AS $fn$
DECLARE
    v_state text;
    v_token bigint;
    v_request jsonb;
BEGIN
    IF octet_length(coalesce(cancel.reason, '')) > 4096 THEN
        RAISE EXCEPTION 'pglane: cancel reason is over 4096 bytes' USING ERRCODE = '22023';
    END IF;
    SELECT j.state, j.lease_token INTO v_state, v_token
    FROM /* TEMPLATE: schema */jobs AS j WHERE j.id = cancel.id FOR UPDATE;
    IF NOT FOUND THEN
        SELECT f.state INTO v_state FROM /* TEMPLATE: schema */jobs_finished AS f WHERE f.id = cancel.id;
        IF FOUND THEN
            RAISE EXCEPTION 'pglane: job % is already %: nothing to cancel', cancel.id, v_state
                USING ERRCODE = '55000';
        END IF;
        RAISE EXCEPTION 'pglane: no job %', cancel.id USING ERRCODE = 'P0002';
    END IF;
    v_request := jsonb_build_object(
        'at', now(), 'by', coalesce(nullif(cancel.requested_by, ''), session_user::text),
        'reason', coalesce(cancel.reason, ''));
    IF v_state = 'running' THEN
        -- The first request's reason is kept; every request notifies again (cheap, and
        -- a worker that missed the first hears the second).
        UPDATE /* TEMPLATE: schema */jobs AS j
        SET cancel_request = coalesce(j.cancel_request, v_request)
        WHERE j.id = cancel.id;
        PERFORM pg_notify('{{channel}}', format('cancel:%s:%s', cancel.id, v_token));
        RETURN 'requested';
    END IF;
    WITH gone AS (
        DELETE FROM /* TEMPLATE: schema */jobs AS j WHERE j.id = cancel.id RETURNING j.*
    )
    INSERT INTO /* TEMPLATE: schema */jobs_finished
        (id, kind, queue, priority, args, state, attempt, max_attempts, run_at, timeout_ms,
         unique_key, worker_id, rescues, errors, created_at, started_at, finished_at)
    SELECT g.id, g.kind, g.queue, g.priority, g.args, 'cancelled', g.attempt, g.max_attempts,
           g.run_at, g.timeout_ms, g.unique_key, g.worker_id, g.rescues,
           g.errors || /* TEMPLATE: schema */cancel_entry(v_request, g.attempt),
           g.created_at, g.started_at, now()
    FROM gone AS g;
    RETURN 'cancelled';
END
$fn$;

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

-- ---------------------------------------------------------------------------------------
-- Dependencies between jobs (flows).
--
-- A job with parents that have not all completed is `waiting`: it stays in the live
-- table but out of the claim index (whose predicate is state = 'available'), so waiting
-- jobs never slow a claim, and rescue (state = 'running') and pruning (finished jobs)
-- never see them. `parents_left` counts its parents not yet resolved.
ALTER TABLE /* TEMPLATE: schema */jobs DROP CONSTRAINT IF EXISTS jobs_state_check;
ALTER TABLE /* TEMPLATE: schema */jobs
    ADD CONSTRAINT jobs_state_check CHECK (state IN ('available', 'running', 'waiting'));
ALTER TABLE /* TEMPLATE: schema */jobs ADD COLUMN IF NOT EXISTS parents_left integer NOT NULL DEFAULT 0;

-- One row per edge. `run_anyway`: the child runs even if this parent fails for good or
-- is cancelled (by default it is cancelled with it). `resolved`: the parent finished and
-- the child was counted off (or cancelled) for it, exactly once per edge, however often
-- the parent is rescued, retried by an operator, or finished again.
-- Edges are kept while either end is in retention (for `pglane show`), and pruned with
-- the jobs.
CREATE TABLE IF NOT EXISTS /* TEMPLATE: schema */job_deps (
    parent     bigint  NOT NULL,
    child      bigint  NOT NULL,
    run_anyway boolean NOT NULL DEFAULT false,
    resolved   boolean NOT NULL DEFAULT false,
    PRIMARY KEY (parent, child)
);
CREATE INDEX IF NOT EXISTS job_deps_child_idx ON /* TEMPLATE: schema */job_deps (child);

-- Releases dependents when jobs finish, whichever statement finished them (an outcome
-- batch, the rescuer's poison-pill verdict, a cancel, a cancelled subtree): a statement
-- trigger on jobs_finished with the finished rows as a transition table, so the rule
-- lives in one place. Per statement, not per row: one outcome batch of thousands of
-- jobs costs one probe of job_deps per job and nothing more when no job has children.
--
--   parent completed (or failed/cancelled, for a run_anyway edge) -> the child's
--       parents_left goes down; at 0 it becomes `available` (run_at no earlier than now,
--       so it queues behind jobs of its priority already due), and one NOTIFY carrying
--       the most urgent priority released wakes the lanes that can take it;
--   parent failed for good or cancelled -> every waiting descendant reached through
--       edges that are not run_anyway is cancelled, with the job that failed named in
--       its history (cause `parent`). One walk of the subtree (a recursive query, no
--       recursion of triggers per level, so a 10,000-deep chain is fine); the cancelled
--       jobs' own insert fires this trigger once more, which counts off their
--       run_anyway children.
--
-- Concurrent parents of one child serialize on the child's row: the second UPDATE
-- re-reads parents_left after the first commits.
CREATE OR REPLACE FUNCTION /* TEMPLATE: schema */release_dependents() RETURNS trigger
LANGUAGE plpgsql
-- Every statement here probes job_deps and jobs by key. Without this, a plan made while
-- job_deps looked small (no statistics yet) walked a 10,000-deep chain with a
-- sequential scan per level: 26 s to cancel the chain, measured, against well under a
-- second by index.
SET enable_seqscan = off
AS $fn$
DECLARE
    v_hint integer;
BEGIN
    IF NOT EXISTS (
        SELECT 1 FROM done AS d
        JOIN /* TEMPLATE: schema */job_deps AS e ON e.parent = d.id AND NOT e.resolved
    ) THEN
        RETURN NULL;
    END IF;

    WITH counted AS (
        UPDATE /* TEMPLATE: schema */job_deps AS e
        SET resolved = true
        FROM done AS d
        WHERE e.parent = d.id AND NOT e.resolved
          AND (d.state = 'completed' OR e.run_anyway)
        RETURNING e.child
    ),
    hits AS (
        SELECT child, count(*)::integer AS n FROM counted GROUP BY child
    ),
    ready AS (
        UPDATE /* TEMPLATE: schema */jobs AS j
        SET parents_left = j.parents_left - h.n,
            state  = CASE WHEN j.parents_left - h.n <= 0 THEN 'available' ELSE 'waiting' END,
            run_at = CASE WHEN j.parents_left - h.n <= 0 THEN greatest(j.run_at, now())
                          ELSE j.run_at END
        FROM hits AS h
        WHERE j.id = h.child AND j.state = 'waiting'
        RETURNING j.state, j.priority, j.run_at
    )
    SELECT min(priority) INTO v_hint FROM ready WHERE state = 'available' AND run_at <= now();
    IF v_hint IS NOT NULL THEN
        PERFORM pg_notify('{{channel}}', v_hint::text);
    END IF;

    WITH RECURSIVE doomed(id, root, root_state) AS (
        SELECT e.child, d.id, d.state
        FROM done AS d
        JOIN /* TEMPLATE: schema */job_deps AS e ON e.parent = d.id
        WHERE d.state <> 'completed' AND NOT e.run_anyway AND NOT e.resolved
        UNION
        SELECT e.child, x.root, x.root_state
        FROM doomed AS x
        JOIN /* TEMPLATE: schema */job_deps AS e ON e.parent = x.id
        WHERE NOT e.run_anyway AND NOT e.resolved
    ),
    one AS (
        SELECT DISTINCT ON (id) id, root, root_state FROM doomed ORDER BY id, root
    ),
    marked AS (
        UPDATE /* TEMPLATE: schema */job_deps AS e
        SET resolved = true
        WHERE NOT e.run_anyway AND NOT e.resolved
          AND e.parent IN (SELECT id FROM one UNION ALL SELECT id FROM done)
        RETURNING 1
    ),
    gone AS (
        DELETE FROM /* TEMPLATE: schema */jobs AS j
        USING one
        WHERE j.id = one.id AND j.state = 'waiting'
        RETURNING j.*, one.root, one.root_state
    )
    INSERT INTO /* TEMPLATE: schema */jobs_finished
        (id, kind, queue, priority, args, state, attempt, max_attempts, run_at, timeout_ms,
         unique_key, worker_id, rescues, errors, created_at, started_at, finished_at)
    SELECT g.id, g.kind, g.queue, g.priority, g.args, 'cancelled', g.attempt, g.max_attempts,
           g.run_at, g.timeout_ms, g.unique_key, g.worker_id, g.rescues,
           g.errors || jsonb_build_array(jsonb_build_object(
               'attempt', g.attempt, 'at', now(), 'cause', 'parent', 'parent', g.root,
               'error', format('cancelled: job %s, which this job depends on, ended %s',
                               g.root, g.root_state))),
           g.created_at, g.started_at, now()
    FROM gone AS g;
    RETURN NULL;
END
$fn$;

DROP TRIGGER IF EXISTS release_dependents ON /* TEMPLATE: schema */jobs_finished;
CREATE TRIGGER release_dependents
    AFTER INSERT ON /* TEMPLATE: schema */jobs_finished
    REFERENCING NEW TABLE AS done
    FOR EACH STATEMENT EXECUTE FUNCTION /* TEMPLATE: schema */release_dependents();

-- A dependency on an existing job: its id, or NULL if `dep` is not a positive 64-bit
-- integer (a ref, a fraction, anything else). CASE, not AND, so a ref never reaches
-- the cast.
CREATE OR REPLACE FUNCTION /* TEMPLATE: schema */flow_parent_id(dep jsonb) RETURNS bigint
LANGUAGE sql IMMUTABLE
AS $fn$
    SELECT CASE WHEN jsonb_typeof(dep) = 'number' AND (dep #>> '{}') ~ '^[0-9]{1,19}$' THEN
               CASE WHEN (dep #>> '{}')::numeric BETWEEN 1 AND 9223372036854775807
                    THEN (dep #>> '{}')::bigint END
           END
$fn$;

-- Enqueues a set of jobs where some depend on others, atomically (all or nothing):
--   SELECT pglane.enqueue_flow('[
--     {"ref": "fetch",  "kind": "fetch_report", "args": {"day": "2026-11-30"}},
--     {"ref": "render", "kind": "render_report", "depends_on": ["fetch"]},
--     {"kind": "mail_report", "depends_on": ["render", 1234], "run_if_parent_fails": true}
--   ]');
-- Each element takes enqueue()'s options as keys (kind, args, priority, run_at or
-- run_at_epoch, delay_s, max_attempts, queue, timeout_ms; no unique_key), an optional
-- `ref` naming it within the set, `depends_on` (refs of jobs listed before it, or ids of
-- existing jobs), and `run_if_parent_fails` (run even if a parent fails for good or is
-- cancelled; by default the job is cancelled then). Returns the ids in input order.
--
-- A ref must be listed before the jobs that depend on it: so no cycle can be written
-- (the Rust API sorts a flow for you and names a cycle if there is one). Every job is
-- inserted through enqueue(), so it is validated exactly like a single job; a bad job,
-- an unknown or later ref, an unknown parent id, or a parent that already failed (for a
-- job that would not run anyway) raises SQLSTATE 22023 and nothing is written.
--
-- Existing parents still live are locked (FOR KEY SHARE) until the caller commits: a
-- parent finishing meanwhile waits, then its trigger sees the new edges. Jobs with
-- parents not yet completed are `waiting`; the others are available at once.
CREATE OR REPLACE FUNCTION /* TEMPLATE: schema */enqueue_flow(jobs jsonb) RETURNS bigint[]
LANGUAGE plpgsql
AS $fn$
DECLARE
    v_n integer;
    v_ids bigint[] := '{}';
    v_job jsonb;
    v_bad text;
    v_existing bigint[];
BEGIN
    IF jsonb_typeof(enqueue_flow.jobs) IS DISTINCT FROM 'array'
       OR jsonb_array_length(enqueue_flow.jobs) = 0 THEN
        RAISE EXCEPTION 'pglane: a flow is a non-empty JSON array of jobs' USING ERRCODE = '22023';
    END IF;
    v_n := jsonb_array_length(enqueue_flow.jobs);
    IF v_n > 100000 THEN
        RAISE EXCEPTION 'pglane: a flow holds at most 100000 jobs, not %', v_n USING ERRCODE = '22023';
    END IF;

    -- Shape: objects, refs unique text, no unique keys, depends_on an array of refs
    -- (strings) and ids (integers).
    SELECT format('job #%s: %s', ord, why) INTO v_bad
    FROM (
        SELECT ord, CASE
            WHEN jsonb_typeof(v) <> 'object' THEN 'must be a JSON object'
            WHEN v ? 'unique_key' THEN 'unique_key is not allowed in a flow'
            WHEN v ? 'ref' AND jsonb_typeof(v -> 'ref') <> 'string' THEN 'ref must be a string'
            WHEN v ? 'depends_on' AND jsonb_typeof(v -> 'depends_on') <> 'array'
                THEN 'depends_on must be an array of refs and job ids'
            WHEN v ? 'run_if_parent_fails' AND jsonb_typeof(v -> 'run_if_parent_fails') <> 'boolean'
                THEN 'run_if_parent_fails must be true or false'
            END AS why
        FROM jsonb_array_elements(enqueue_flow.jobs) WITH ORDINALITY AS t(v, ord)
    ) AS x
    WHERE why IS NOT NULL
    ORDER BY ord LIMIT 1;
    IF v_bad IS NOT NULL THEN
        RAISE EXCEPTION 'pglane: flow %', v_bad USING ERRCODE = '22023';
    END IF;
    SELECT format('ref %s is used by more than one job', quote_literal(v ->> 'ref')) INTO v_bad
    FROM jsonb_array_elements(enqueue_flow.jobs) AS t(v)
    WHERE v ? 'ref'
    GROUP BY v ->> 'ref' HAVING count(*) > 1 LIMIT 1;
    IF v_bad IS NOT NULL THEN
        RAISE EXCEPTION 'pglane: flow %', v_bad USING ERRCODE = '22023';
    END IF;

    -- Every dependency resolves: a ref to a job listed before, an id to an existing job.
    SELECT array_agg(DISTINCT /* TEMPLATE: schema */flow_parent_id(d.dep)) INTO v_existing
    FROM jsonb_array_elements(enqueue_flow.jobs) AS t(v),
         jsonb_array_elements(coalesce(v -> 'depends_on', '[]')) AS d(dep);
    PERFORM 1 FROM /* TEMPLATE: schema */jobs AS j WHERE j.id = ANY(v_existing) FOR KEY SHARE;
    SELECT format('job #%s: %s', c.ord, CASE
            WHEN jsonb_typeof(c.dep) = 'string' AND p.ord IS NULL
                THEN format('depends on unknown ref %s', c.dep)
            WHEN jsonb_typeof(c.dep) = 'string'
                THEN format('depends on ref %s, listed at or after it: list parents before '
                            'their children (a cycle cannot be listed so)', c.dep)
            WHEN /* TEMPLATE: schema */flow_parent_id(c.dep) IS NULL
                THEN format('depends_on holds %s: use refs (strings) and job ids', c.dep)
            WHEN live.id IS NULL AND fin.id IS NULL
                THEN format('depends on job %s, which does not exist', c.dep)
            ELSE format('depends on job %s, which already ended %s (set run_if_parent_fails '
                        'to run it anyway)', c.dep, fin.state)
            END) INTO v_bad
    FROM (
        SELECT t.ord, t.v, d.dep
        FROM jsonb_array_elements(enqueue_flow.jobs) WITH ORDINALITY AS t(v, ord),
             jsonb_array_elements(coalesce(t.v -> 'depends_on', '[]')) AS d(dep)
    ) AS c
    LEFT JOIN (
        SELECT ord, v ->> 'ref' AS ref
        FROM jsonb_array_elements(enqueue_flow.jobs) WITH ORDINALITY AS t(v, ord)
    ) AS p ON jsonb_typeof(c.dep) = 'string' AND p.ref = c.dep #>> '{}'
    LEFT JOIN /* TEMPLATE: schema */jobs AS live ON live.id = /* TEMPLATE: schema */flow_parent_id(c.dep)
    LEFT JOIN /* TEMPLATE: schema */jobs_finished AS fin ON fin.id = /* TEMPLATE: schema */flow_parent_id(c.dep)
    WHERE (jsonb_typeof(c.dep) = 'string' AND (p.ord IS NULL OR p.ord >= c.ord))
       OR (jsonb_typeof(c.dep) <> 'string' AND (
              /* TEMPLATE: schema */flow_parent_id(c.dep) IS NULL
              OR (live.id IS NULL AND fin.id IS NULL)
              OR (fin.state IN ('failed', 'cancelled')
                  AND NOT coalesce((c.v ->> 'run_if_parent_fails')::boolean, false))))
    ORDER BY c.ord LIMIT 1;
    IF v_bad IS NOT NULL THEN
        RAISE EXCEPTION 'pglane: flow %', v_bad USING ERRCODE = '22023';
    END IF;

    -- Insert every job through enqueue(), in order.
    FOR v_job IN
        SELECT v FROM jsonb_array_elements(enqueue_flow.jobs) WITH ORDINALITY AS t(v, ord) ORDER BY ord
    LOOP
        v_ids := v_ids || /* TEMPLATE: schema */enqueue(
            kind         => v_job ->> 'kind',
            args         => coalesce(v_job -> 'args', '{}'),
            priority     => coalesce((v_job ->> 'priority')::integer, 100),
            run_at       => coalesce((v_job ->> 'run_at')::timestamptz,
                                     to_timestamp((v_job ->> 'run_at_epoch')::float8)),
            max_attempts => coalesce((v_job ->> 'max_attempts')::integer, 20),
            queue        => coalesce(v_job ->> 'queue', 'default'),
            timeout_ms   => (v_job ->> 'timeout_ms')::integer,
            delay        => (v_job ->> 'delay_s')::float8 * interval '1 second');
    END LOOP;

    -- The edges; a parent already finished is resolved at once.
    INSERT INTO /* TEMPLATE: schema */job_deps (parent, child, run_anyway, resolved)
    SELECT coalesce(v_ids[p.ord], /* TEMPLATE: schema */flow_parent_id(c.dep)),
           v_ids[c.ord],
           coalesce((c.v ->> 'run_if_parent_fails')::boolean, false),
           fin.id IS NOT NULL
    FROM (
        SELECT t.ord, t.v, d.dep
        FROM jsonb_array_elements(enqueue_flow.jobs) WITH ORDINALITY AS t(v, ord),
             jsonb_array_elements(coalesce(t.v -> 'depends_on', '[]')) AS d(dep)
    ) AS c
    LEFT JOIN (
        SELECT ord, v ->> 'ref' AS ref
        FROM jsonb_array_elements(enqueue_flow.jobs) WITH ORDINALITY AS t(v, ord)
    ) AS p ON jsonb_typeof(c.dep) = 'string' AND p.ref = c.dep #>> '{}'
    LEFT JOIN /* TEMPLATE: schema */jobs_finished AS fin ON fin.id = /* TEMPLATE: schema */flow_parent_id(c.dep)
    ON CONFLICT (parent, child) DO NOTHING;

    UPDATE /* TEMPLATE: schema */jobs AS j
    SET state = 'waiting', parents_left = w.n
    FROM (
        SELECT e.child, count(*)::integer AS n
        FROM /* TEMPLATE: schema */job_deps AS e
        WHERE e.child = ANY(v_ids) AND NOT e.resolved
        GROUP BY e.child
    ) AS w
    WHERE j.id = w.child;
    RETURN v_ids;
END
$fn$;

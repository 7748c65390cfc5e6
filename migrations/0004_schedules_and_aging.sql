-- pglane migration 4: periodic (cron) jobs, and aging within a lane.
--
-- Safe to repeat and to run concurrently with itself: every statement creates only what
-- is missing (the migrator also applies it under an advisory lock and records the
-- version).

-- One row per schedule, written by the engines that declare it (the newest
-- declaration's definition is the one fired) and advanced by compare-and-set on
-- `last_tick` in the statement that inserts each tick's job, so engines racing for a
-- tick insert one job. No engine is a leader.
CREATE TABLE IF NOT EXISTS /* TEMPLATE: schema */schedules (
    name          text        PRIMARY KEY,
    cron          text        NOT NULL,
    time_zone     text        NOT NULL DEFAULT 'UTC',
    kind          text        NOT NULL,
    queue         text        NOT NULL DEFAULT 'default',
    priority      smallint    NOT NULL DEFAULT 100 CHECK (priority >= 0),
    args          jsonb       NOT NULL DEFAULT '{}',
    max_attempts  integer     NOT NULL DEFAULT 20 CHECK (max_attempts BETWEEN 1 AND 1000),
    timeout_ms    integer     CHECK (timeout_ms BETWEEN 1 AND 86400000),
    unique_key    text,
    missed        text        NOT NULL DEFAULT 'skip'
                              CHECK (missed IN ('skip', 'coalesce', 'catch_up')),
    catch_up_max  integer     NOT NULL DEFAULT 0 CHECK (catch_up_max >= 0),
    grace_ms      integer     NOT NULL DEFAULT 2000 CHECK (grace_ms BETWEEN 0 AND 86400000),
    -- When and by whom the stored definition was written (the newest declaration).
    declared_at   timestamptz NOT NULL DEFAULT now(),
    declared_by   text,
    -- Engines declaring the schedule push this ahead while they run; past it, no engine
    -- fires the schedule and it shows as inactive.
    active_until  timestamptz NOT NULL DEFAULT now(),
    -- The newest tick dealt with (enqueued, or skipped under the missed-tick policy).
    last_tick     timestamptz NOT NULL DEFAULT now(),
    -- When the last job was enqueued.
    last_run_at   timestamptz,
    runs          bigint      NOT NULL DEFAULT 0,
    skipped       bigint      NOT NULL DEFAULT 0
);

-- Aging: when maintenance raises the priority of a job that waited past its lane's
-- `age_after`, the priority it was enqueued with is kept here (NULL: never aged).
ALTER TABLE /* TEMPLATE: schema */jobs ADD COLUMN IF NOT EXISTS base_priority smallint;

-- all_jobs shows it too (NULL for finished jobs: a job that leaves the live table is
-- recorded with the priority it had then). A column added at the end, so the view can
-- be replaced in place.
CREATE OR REPLACE VIEW /* TEMPLATE: schema */all_jobs AS
    SELECT id, kind, queue, priority, args, state, attempt, max_attempts, run_at, unique_key,
           worker_id, rescues, errors, created_at, started_at, NULL::timestamptz AS finished_at,
           base_priority
    FROM /* TEMPLATE: schema */jobs
    UNION ALL
    SELECT id, kind, queue, priority, args, state, attempt, max_attempts, run_at, unique_key,
           worker_id, rescues, errors, created_at, started_at, finished_at,
           NULL::smallint AS base_priority
    FROM /* TEMPLATE: schema */jobs_finished;

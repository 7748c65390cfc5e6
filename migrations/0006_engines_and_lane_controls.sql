-- pglane migration 6: engine heartbeats and lane control messages, for the dashboard.
--
-- Safe to repeat and to run concurrently with itself (IF NOT EXISTS everywhere; the
-- migrator also applies it under an advisory lock and records the version).

-- One row per running engine (process), written by the engine every heartbeat interval
-- and deleted when it stops. A row not refreshed for a while is a dead engine: readers
-- hide it, and the next heartbeat of any engine deletes it.
-- `lanes` holds one object per lane: name, lo, hi, slots, running, paused, and
-- `applied`, the version of the lane's control it has applied (0 for none).
CREATE TABLE IF NOT EXISTS /* TEMPLATE: schema */engines (
    worker_id    text        PRIMARY KEY,
    queue        text        NOT NULL,
    started_at   timestamptz NOT NULL DEFAULT now(),
    seen_at      timestamptz NOT NULL DEFAULT now(),
    interval_ms  integer     NOT NULL CHECK (interval_ms > 0),
    listener     text        NOT NULL,
    database_ok  boolean     NOT NULL,
    lanes        jsonb       NOT NULL DEFAULT '[]'
);

-- The operators' wish for a lane of a queue, for every engine that runs it: paused or
-- not, and its concurrency (NULL: as the engine declared it). Each change takes a new
-- `version` from the sequence; an engine applies a lane's control when its version is
-- newer than the one it applied, and reports the version in its heartbeat.
CREATE SEQUENCE IF NOT EXISTS /* TEMPLATE: schema */lane_control_version;

CREATE TABLE IF NOT EXISTS /* TEMPLATE: schema */lane_controls (
    queue        text        NOT NULL,
    lane         text        NOT NULL,
    paused       boolean     NOT NULL DEFAULT false,
    concurrency  integer     CHECK (concurrency BETWEEN 1 AND 100000),
    version      bigint      NOT NULL,
    updated_at   timestamptz NOT NULL DEFAULT now(),
    updated_by   text,
    PRIMARY KEY (queue, lane)
);

-- Sets a lane's control for every engine of queue $1 that runs lane $2: $3 pauses or
-- resumes (NULL keeps it), $4 sets the concurrency (NULL keeps it), $5 says who asked.
-- A new version from the sequence tells engines there is something to apply.
INSERT INTO /* TEMPLATE: schema */lane_controls AS c
    (queue, lane, paused, concurrency, version, updated_by)
VALUES ($1::text, $2::text, coalesce($3::boolean, false), $4::int,
        nextval('"{{schema}}".lane_control_version'), $5::text)
ON CONFLICT (queue, lane) DO UPDATE
SET paused = coalesce($3::boolean, c.paused),
    concurrency = coalesce($4::int, c.concurrency),
    version = excluded.version,
    updated_at = now(),
    updated_by = excluded.updated_by
RETURNING version

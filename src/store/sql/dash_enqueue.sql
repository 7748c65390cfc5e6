-- Enqueues one job by hand from the dashboard, through the schema's SQL enqueue function
-- so it is validated exactly as every other door validates, and the workers are woken.
SELECT /* TEMPLATE: schema */enqueue(
    kind => $1::text, args => $2::jsonb, priority => $3::int, queue => $4::text,
    delay => make_interval(secs => $5::float8))

-- Enqueues a flow (jobs with dependencies, already checked and ordered by the caller)
-- through the schema's enqueue_flow() function (migration 5), the one implementation
-- for Rust and SQL callers. Returns the ids in the order given.
SELECT /* TEMPLATE: schema */enqueue_flow($1::jsonb)

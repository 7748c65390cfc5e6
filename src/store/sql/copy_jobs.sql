-- Bulk insert by binary COPY (Engine::enqueue_copy), the fastest way in: no per-row
-- statement, no parameter arrays, no text parsing on the server.
--
-- COPY has no ON CONFLICT: a unique key already held by a live job, or shared by two
-- jobs of the batch, aborts the whole COPY (unique_violation, SQLSTATE 23505) and,
-- since it runs in one transaction, nothing is written. Columns not listed take their
-- defaults (state 'available', attempt 0, …). run_at is always sent, computed from the
-- transaction's now() (see copy_prelude.sql), so every row follows the database clock.
COPY /* TEMPLATE: schema */jobs
    (kind, queue, priority, args, max_attempts, run_at, timeout_ms, unique_key)
FROM STDIN (FORMAT binary)

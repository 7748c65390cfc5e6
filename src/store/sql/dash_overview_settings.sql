-- Settings for the overview's read-only transaction only (is_local): no JIT (its
-- compile time, tens of milliseconds, is most of the cost of the last hour's
-- percentiles over a large history, which the planner prices above jit_above_cost) and
-- room to sort that hour's rows in memory.
SELECT set_config('jit', 'off', true), set_config('work_mem', '32MB', true)

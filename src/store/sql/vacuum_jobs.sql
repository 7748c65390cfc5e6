-- Vacuums the live job table between autovacuum's visits (see Store::vacuum_if_needed:
-- dead versions at the head of the claim index slowed a 1M-job drain from 62k to 45k
-- jobs/s). A plain VACUUM takes no lock that claims wait for, and SKIP_LOCKED makes it
-- step aside when another engine or autovacuum is already vacuuming. VACUUM cannot run
-- in a transaction block, so it is sent alone, as a simple query. PARALLEL 0: with
-- parallel index vacuuming its workers took every core for the VACUUM's index phase,
-- and urgent claims waited for CPU behind them (w6's urgent p99).
VACUUM (SKIP_LOCKED, PARALLEL 0) /* TEMPLATE: schema */jobs

-- Summarizes the page ranges of the history's BRIN index on finished_at that were
-- filled since the last call (each range once), ahead of pruning. An unsummarized range
-- matches every BRIN condition, so without this each prune pass re-read every history
-- row written since autovacuum last visited the table: 115 ms of CPU per 500,000 rows,
-- every 5 s, even with nothing to prune (it showed in w6's urgent-latency tail). Needs
-- ownership of the table (as VACUUM does); runs under a short lock_timeout, since it
-- takes the same lock as (auto)vacuum.
SELECT brin_summarize_new_values('"{{schema}}".jobs_finished_at_idx'::regclass)

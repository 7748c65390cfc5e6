-- The listener's health check, run on its own connection under a timeout. A connection
-- can outlive a failover: the old primary comes back in recovery or read-only and the
-- session still looks healthy, so the check asks for both. It also asks whether the
-- session still listens on channel $1: a connection pooler swapping server sessions, or
-- a stray DISCARD ALL, drops a subscription without a word.
SELECT pg_is_in_recovery(),
       current_setting('transaction_read_only') = 'on',
       EXISTS (SELECT 1 FROM pg_listening_channels() AS c WHERE c = $1)

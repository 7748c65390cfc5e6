-- Test hook (Engine::drop_subscription_silently): drops every subscription of the
-- listener's own session without telling the listener, the way a connection pooler or a
-- stray DISCARD ALL would. No other session can do that to it.
UNLISTEN *

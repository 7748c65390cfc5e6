-- Bounds every later statement of an operator's session ($1, e.g. '60s'), so a stuck
-- server or a lock wait cannot hang a command. set_config(…, false) is the session-wide
-- SET, written as a function so the value can be a parameter.
SELECT set_config('statement_timeout', $1, false)

-- Subscribes the listener's own connection to the schema's channel. The listener owns a
-- plain connection, never a pooled one: bb8 drives pooled connections itself and drops
-- their notifications. The channel name is validated (lower case, at most 63 bytes), so
-- quoting it is enough.
LISTEN "{{channel}}"

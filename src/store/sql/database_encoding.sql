-- The database's name and encoding: pglane needs UTF8 (see store::encoding).
SELECT current_database()::text, current_setting('server_encoding')

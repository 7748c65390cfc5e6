-- Cancels a job through the schema's cancel() function (migration 5), the one
-- implementation behind every door: a job not started is cancelled at once
-- ('cancelled'), a running one gets a durable request and its worker a notification
-- ('requested'); a finished or unknown job raises 55000 / P0002 and nothing is written.
SELECT /* TEMPLATE: schema */cancel($1::bigint, $2::text, $3::text)

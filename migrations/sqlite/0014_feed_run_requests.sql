-- A manual run an operator asked for (admin API), at most one waiting per feed: a newer
-- request replaces it. The worker runs it at its next look at the feed and clears it, only
-- if it is still the one it ran (run_request_at unchanged). Times in microseconds.
ALTER TABLE feeds ADD COLUMN run_request_kind text
    CHECK (run_request_kind IN ('incremental', 'full_refresh', 'backfill'));
ALTER TABLE feeds ADD COLUMN run_request_since INTEGER;
ALTER TABLE feeds ADD COLUMN run_request_until INTEGER;
ALTER TABLE feeds ADD COLUMN run_request_by text;
ALTER TABLE feeds ADD COLUMN run_request_at INTEGER;

-- A manual run an operator asked for (admin API), at most one waiting per feed: a newer
-- request replaces it. The worker runs it at its next look at the feed and clears it, only
-- if it is still the one it ran (run_request_at unchanged).
ALTER TABLE feeds
    ADD COLUMN run_request_kind  text CHECK (run_request_kind IN ('incremental', 'full_refresh', 'backfill')),
    ADD COLUMN run_request_since timestamptz,
    ADD COLUMN run_request_until timestamptz,
    ADD COLUMN run_request_by    text,
    ADD COLUMN run_request_at    timestamptz,
    ADD CONSTRAINT feeds_run_request_whole CHECK (
        (run_request_kind IS NULL) = (run_request_at IS NULL)
        AND (run_request_kind IS NULL) = (run_request_by IS NULL)
        AND ((run_request_kind = 'backfill') = (run_request_since IS NOT NULL AND run_request_until IS NOT NULL))
        AND (run_request_since IS NULL OR run_request_since < run_request_until)
    );

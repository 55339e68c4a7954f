-- Retention deletes dead letters resolved before its cutoff (decision 0031): found by the time
-- they were resolved, not by a scan of every failure ever recorded. Open ones are not indexed.
CREATE INDEX dead_letters_resolved ON dead_letters (resolved_at) WHERE resolved_at IS NOT NULL;

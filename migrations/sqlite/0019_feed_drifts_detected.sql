-- Retention deletes feed drifts detected before its cutoff (decision 0030): found by time, not
-- by a scan of every drift a full refresh ever found.
CREATE INDEX feed_drifts_detected ON feed_drifts (detected_at);

-- A channel's health counts its drifts of the last hour (`drift_counts`): found by time, not
-- by a scan of every drift ever journaled.
CREATE INDEX drifts_detected ON drifts (detected_at);

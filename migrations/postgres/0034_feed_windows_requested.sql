-- The manual run a window was last pulled for (its `requested_at`, the admin service's
-- stamp), NULL for scheduled work. A manual backfill resumed after a restart skips exactly
-- the chunks pulled for it: told apart by comparing the worker's completion time with the
-- admin service's stamp, a chunk another run completed shortly before the request was
-- skipped whenever the admin clock was behind (decision 0018). Pulled again for a later
-- request, a window's row takes that request's stamp; scheduled work leaves it.
ALTER TABLE feed_windows ADD COLUMN requested_at timestamptz;

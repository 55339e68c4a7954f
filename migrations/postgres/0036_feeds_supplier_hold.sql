-- Until when the feed's supplier asked not to be asked (a 429 whose `Retry-After` was longer
-- than a run waits out, recorded with the run's failure). Kept here, not only in the
-- scheduler's memory, so that a restarted worker and a `--once` run wait for it too: the
-- contract says wait at least that long. NULL, or a time past, holds nothing.
ALTER TABLE feeds ADD COLUMN supplier_hold_until timestamptz;

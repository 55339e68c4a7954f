-- A counter bumped by every write of an offer: `apply_batch` reads offers without locking
-- them and writes each one only if its revision is still the one it read.
ALTER TABLE offers ADD COLUMN revision bigint NOT NULL DEFAULT 0;

-- Dead letters that heal (decision 0007). A publish letter now keeps the item it is about
-- and the newest version that failed, so a later accepted version resolves it
-- (`resolved_at`, `resolution`); auto-heal counts its rounds on it (`heal_rounds`,
-- `last_healed_at`) and gives up on it after a few (`quarantined_at`), leaving it open for
-- an operator.
ALTER TABLE dead_letters ADD COLUMN item_id BLOB;
ALTER TABLE dead_letters ADD COLUMN version bigint NOT NULL DEFAULT 0;
ALTER TABLE dead_letters ADD COLUMN heal_rounds integer NOT NULL DEFAULT 0;
ALTER TABLE dead_letters ADD COLUMN last_healed_at INTEGER;
ALTER TABLE dead_letters ADD COLUMN quarantined_at INTEGER;
ALTER TABLE dead_letters ADD COLUMN resolution text;

-- A publish letter's subject is its item id (`unhex` gives NULL for anything that is not
-- hex). Letters written before this migration kept no version: 0, so any version the
-- channel accepts later resolves them.
UPDATE dead_letters SET item_id = unhex(replace(subject, '-', ''))
WHERE stage = 'publish' AND length(subject) = 36;

-- Auto-heal walks the open letters it may still heal, least recently healed first.
CREATE INDEX dead_letters_healable ON dead_letters (coalesce(last_healed_at, first_failed_at), dead_letter_id)
    WHERE resolved_at IS NULL AND quarantined_at IS NULL;

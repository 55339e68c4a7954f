-- Dead letters that heal (decision 0007). A publish letter now keeps the item it is about
-- and the newest version that failed, so a later accepted version resolves it
-- (`resolved_at`, `resolution`); auto-heal counts its rounds on it (`heal_rounds`,
-- `last_healed_at`) and gives up on it after a few (`quarantined_at`), leaving it open for
-- an operator.
ALTER TABLE dead_letters
    ADD COLUMN item_id uuid,
    ADD COLUMN version bigint NOT NULL DEFAULT 0,
    ADD COLUMN heal_rounds integer NOT NULL DEFAULT 0,
    ADD COLUMN last_healed_at timestamptz,
    ADD COLUMN quarantined_at timestamptz,
    ADD COLUMN resolution text;

-- A publish letter's subject is its item id. Letters written before this migration kept no
-- version: 0, so any version the channel accepts later resolves them.
UPDATE dead_letters SET item_id = subject::uuid
WHERE stage = 'publish' AND subject ~ '^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$';

-- Auto-heal walks the open letters it may still heal, least recently healed first.
CREATE INDEX dead_letters_healable ON dead_letters (coalesce(last_healed_at, first_failed_at), dead_letter_id)
    WHERE resolved_at IS NULL AND quarantined_at IS NULL;

-- A rejected message keeps only its first 4 KiB in `raw_payload`, and its whole length here.
-- NULL on rows journaled before: their `raw_payload` is the whole message.
ALTER TABLE events ADD COLUMN raw_payload_length bigint;

-- A source position is an offset and, for sources that need more to resume (a pulled
-- feed's window and page cursor), an opaque cursor kept with the furthest offset.
ALTER TABLE source_checkpoints ADD COLUMN cursor text;

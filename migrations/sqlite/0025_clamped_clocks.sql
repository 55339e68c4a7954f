-- A supplier clock that runs ahead (decision 0019, "A clamped clock"): as in Postgres.
-- `kept_from`: the event's own time (micros) when later than its receipt; a claim is kept
-- from the later of the two. `clamped_until`: the latest own time of a clamped event decided
-- on the offer.
ALTER TABLE event_claims ADD COLUMN kept_from INTEGER;
ALTER TABLE offers ADD COLUMN clamped_until INTEGER;

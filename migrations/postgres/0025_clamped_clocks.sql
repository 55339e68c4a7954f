-- A supplier clock that runs ahead (decision 0019, "A clamped clock"). An event whose clock
-- was clamped was ordered at its receipt plus the allowance; a redelivery once its claim is
-- gone is ordered at its own, later, time.
--
-- `kept_from`: the event's own time when it is later than its receipt. A claim is kept for the
-- claim retention from the later of the two, so while the event's own time is still ahead, a
-- redelivery finds its claim. NULL (the usual case) means from `received_at`.
ALTER TABLE event_claims ADD COLUMN kept_from timestamptz;

-- `clamped_until`: the latest own time of a clamped event decided on the offer. A redelivery
-- past the claim retention at or below it cannot be placed, and is never counted.
ALTER TABLE offers ADD COLUMN clamped_until timestamptz;

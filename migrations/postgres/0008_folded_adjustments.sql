-- Adjustments older than the horizon behind an offer's newest one, summed (decision 0009):
-- JSON [through_effective_at_micros, through_sequence, through_event_id, delta, count], or
-- NULL while nothing is folded. The journal keeps every folded adjustment.
ALTER TABLE offers ADD COLUMN folded text;

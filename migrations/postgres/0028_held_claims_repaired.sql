-- A held event delivered again while its supplier was still off was held again, but its
-- claim was released (fixed with this migration): a later replay found the claim decided and
-- took the event for a duplicate, so it was never applied, and retention did not keep its day.
-- Every claim whose journal row is held is held again. The rows are found through the partial
-- index `events_held`; their claims by primary key.
UPDATE event_claims c
SET held = true
FROM events e
WHERE e.outcome = 'held'
  AND c.event_id = e.event_id
  AND c.journal_id = e.journal_id
  AND c.received_at = e.received_at
  AND NOT c.held;

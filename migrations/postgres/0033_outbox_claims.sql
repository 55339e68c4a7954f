-- Each claim of an outbox row leaves its own token on the row, and a publish record changes
-- the row only while the claim it was made under holds it: a record written after its lease
-- passed (a store that refused the round's record for longer than a lease) would otherwise
-- land on another publisher's claim: a backoff, a requeue or a delete under a send in flight.
-- The token is cleared when a record settles the row.
ALTER TABLE outbox ADD COLUMN claim uuid;

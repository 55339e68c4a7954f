-- A row waiting out a backoff (or a throttled channel's hold) is kept apart from the rows a
-- claim walks in first-enqueue order: `retry_at`, set by the record that put it off and
-- cleared when a newer version starts a fresh run, takes it out of `outbox_channel_fresh`
-- and into `outbox_channel_retry`, which a claim walks by retry time, only as far as now.
-- Walked by first enqueue time alone, a claim passed every row in backoff to find the few
-- due: on a channel that was down, its whole backlog at every claim, about 30 ms of the
-- server's time each, at every poll of each of its lanes (decision 0057). A lease moves no
-- indexed column, so a claim's update stays in place (HOT, migration 0004).
ALTER TABLE outbox ADD COLUMN retry_at timestamptz;
-- Rows put off now (a failure's backoff, a throttle, a newer version coalesced into a row in
-- backoff): apart from the start. A leased row among them is due at its lease's end, as before.
UPDATE outbox SET retry_at = available_at WHERE available_at > now();
CREATE INDEX outbox_channel_fresh ON outbox (channel, first_enqueued_at, outbox_id) WHERE retry_at IS NULL;
CREATE INDEX outbox_channel_retry ON outbox (channel, retry_at, outbox_id) WHERE retry_at IS NOT NULL;
DROP INDEX outbox_channel_first_enqueued;

-- A channel's rows in the order they fall due: a claim walks only the rows due now (their
-- `available_at` passed), oldest due first, and stops at its limit. Walked by first enqueue
-- time, a claim passed every row still waiting out its backoff or lease to find the few
-- due: on a channel that was down, every row of its backlog at every claim, in the one
-- writer thread (decision 0057). The index also serves the outbox depth (count and oldest
-- enqueue time per channel) as the one it replaces did.
CREATE INDEX outbox_channel_due ON outbox (channel, available_at, first_enqueued_at);
DROP INDEX outbox_channel_first_enqueued;

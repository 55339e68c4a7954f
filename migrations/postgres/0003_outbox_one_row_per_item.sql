-- One outbox row per item and channel, holding the newest version waiting: a new version
-- replaces the waiting one in place, so the outbox never holds more rows than items and a
-- claim walks an index instead of ranking every waiting version of every item.
-- `first_enqueued_at` is when the oldest version not yet sent was queued (for the maximum
-- wait of a hot item and the oldest-pending age); `enqueued_at` is the newest version's.
ALTER TABLE outbox ADD COLUMN first_enqueued_at timestamptz;

-- Merge the waiting versions of each item and channel into its newest row: the oldest
-- enqueue time, and the latest lease or retry time so nothing leased goes out twice.
UPDATE outbox AS o
SET first_enqueued_at = merged.first_enqueued_at, available_at = merged.available_at
FROM (
    SELECT item_id, channel, min(enqueued_at) AS first_enqueued_at, max(available_at) AS available_at
    FROM outbox GROUP BY item_id, channel
) AS merged
WHERE o.item_id = merged.item_id AND o.channel = merged.channel;
DELETE FROM outbox AS o
WHERE EXISTS (
    SELECT 1 FROM outbox AS newer
    WHERE newer.item_id = o.item_id AND newer.channel = o.channel AND newer.version > o.version
);

ALTER TABLE outbox ALTER COLUMN first_enqueued_at SET DEFAULT now();
ALTER TABLE outbox ALTER COLUMN first_enqueued_at SET NOT NULL;
ALTER TABLE outbox DROP CONSTRAINT outbox_item_id_version_channel_key;
ALTER TABLE outbox ADD CONSTRAINT outbox_item_id_channel_key UNIQUE (item_id, channel);
DROP INDEX outbox_channel_item;
-- Claims take the longest-waiting items of a channel first.
CREATE INDEX outbox_channel_first_enqueued ON outbox (channel, first_enqueued_at);

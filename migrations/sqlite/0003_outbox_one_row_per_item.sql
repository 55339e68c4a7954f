-- One outbox row per item and channel, holding the newest version waiting: a new version
-- replaces the waiting one in place, so the outbox never holds more rows than items.
-- `first_enqueued_at` is when the oldest version not yet sent was queued (for the maximum
-- wait of a hot item and the oldest-pending age); `enqueued_at` is the newest version's.
-- SQLite cannot drop a table constraint: the table is rebuilt.
CREATE TABLE outbox_merged (
    outbox_id         INTEGER PRIMARY KEY AUTOINCREMENT,
    item_id           BLOB NOT NULL,
    tenant_id         text NOT NULL,
    sku               text NOT NULL,
    quantity          bigint NOT NULL,
    version           bigint NOT NULL,
    channel           text NOT NULL,
    traceparent       text,
    enqueued_at       INTEGER NOT NULL DEFAULT (CAST((julianday('now') - 2440587.5) * 86400000000 AS INTEGER)),
    first_enqueued_at INTEGER NOT NULL DEFAULT (CAST((julianday('now') - 2440587.5) * 86400000000 AS INTEGER)),
    available_at      INTEGER NOT NULL DEFAULT (CAST((julianday('now') - 2440587.5) * 86400000000 AS INTEGER)),
    attempts          integer NOT NULL DEFAULT 0,
    UNIQUE (item_id, channel)
);

-- Each item and channel keeps its newest row, with the oldest enqueue time and the latest
-- lease or retry time of its waiting versions, so nothing leased goes out twice.
INSERT INTO outbox_merged (outbox_id, item_id, tenant_id, sku, quantity, version, channel, traceparent, enqueued_at,
                           first_enqueued_at, available_at, attempts)
SELECT o.outbox_id, o.item_id, o.tenant_id, o.sku, o.quantity, o.version, o.channel, o.traceparent, o.enqueued_at,
       (SELECT min(w.enqueued_at) FROM outbox AS w WHERE w.item_id = o.item_id AND w.channel = o.channel),
       (SELECT max(w.available_at) FROM outbox AS w WHERE w.item_id = o.item_id AND w.channel = o.channel),
       o.attempts
FROM outbox AS o
WHERE o.version = (SELECT max(w.version) FROM outbox AS w WHERE w.item_id = o.item_id AND w.channel = o.channel);

DROP TABLE outbox;
ALTER TABLE outbox_merged RENAME TO outbox;
-- Claims take the longest-waiting items of a channel first.
CREATE INDEX outbox_channel_first_enqueued ON outbox (channel, first_enqueued_at);
CREATE INDEX outbox_tenant ON outbox (tenant_id);

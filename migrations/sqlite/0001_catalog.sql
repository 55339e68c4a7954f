-- SQLite dialect of postgres/0001_catalog.sql: timestamps are INTEGER microseconds since
-- the Unix epoch (UTC), UUIDs 16-byte BLOBs, booleans 0/1.
-- The catalog: tenants and their flags, the event journal, offers, items, the outbox,
-- publish attempts, dead letters and source checkpoints.

CREATE TABLE tenants (
    tenant_id    text PRIMARY KEY,
    sync_enabled INTEGER NOT NULL,
    created_at   INTEGER NOT NULL DEFAULT (CAST((julianday('now') - 2440587.5) * 86400000000 AS INTEGER)),
    updated_at   INTEGER NOT NULL DEFAULT (CAST((julianday('now') - 2440587.5) * 86400000000 AS INTEGER))
);

CREATE TABLE suppliers (
    tenant_id    text NOT NULL REFERENCES tenants (tenant_id),
    supplier_id  text NOT NULL,
    sync_enabled INTEGER NOT NULL,
    created_at   INTEGER NOT NULL DEFAULT (CAST((julianday('now') - 2440587.5) * 86400000000 AS INTEGER)),
    updated_at   INTEGER NOT NULL DEFAULT (CAST((julianday('now') - 2440587.5) * 86400000000 AS INTEGER)),
    PRIMARY KEY (tenant_id, supplier_id)
);

-- Every message ever received, once: a redelivery of a decoded event is counted on its
-- first row; a rejected message has its own row and keeps its raw bytes.
CREATE TABLE events (
    journal_id          INTEGER PRIMARY KEY AUTOINCREMENT,
    event_id            BLOB,
    tenant_id           text,
    supplier_id         text,
    sku                 text,
    event_type          text,
    quantity            bigint,
    delta               bigint,
    updated_at          INTEGER,
    sequence            bigint,          -- the u64 stored bit for bit
    effective_at        INTEGER,
    clock_drift_clamped INTEGER NOT NULL DEFAULT 0,
    received_at         INTEGER NOT NULL,
    outcome             text NOT NULL,
    reason              text,
    detail              text,
    fingerprint         bigint,          -- the u64 stored bit for bit
    redelivery_count    bigint NOT NULL DEFAULT 0,
    payload_differs     INTEGER NOT NULL DEFAULT 0,
    source              text NOT NULL,
    source_partition    integer NOT NULL,
    source_offset       bigint NOT NULL,
    traceparent         text,
    raw_payload         BLOB,
    decided_at          INTEGER NOT NULL DEFAULT (CAST((julianday('now') - 2440587.5) * 86400000000 AS INTEGER)),
    last_redelivered_at INTEGER
);

-- One decided row per event id: the claim that makes every later delivery a duplicate.
CREATE UNIQUE INDEX events_event_id_decided ON events (event_id)
    WHERE outcome IN ('applied', 'stale', 'superseded', 'held');
CREATE INDEX events_item ON events (tenant_id, sku);
CREATE INDEX events_tenant_received ON events (tenant_id, received_at);

CREATE TABLE offers (
    tenant_id             text NOT NULL,
    supplier_id           text NOT NULL,
    sku                   text NOT NULL,
    quantity              bigint NOT NULL DEFAULT 0,
    winner_event_id       BLOB,
    snapshot_quantity     bigint,
    snapshot_effective_at INTEGER,
    snapshot_sequence     bigint,
    snapshot_event_id     BLOB,
    adjustments           text NOT NULL DEFAULT '[]',
    updated_at            INTEGER NOT NULL DEFAULT (CAST((julianday('now') - 2440587.5) * 86400000000 AS INTEGER)),
    PRIMARY KEY (tenant_id, supplier_id, sku)
);
CREATE INDEX offers_item ON offers (tenant_id, sku);

CREATE TABLE items (
    item_id    BLOB PRIMARY KEY,
    tenant_id  text NOT NULL,
    sku        text NOT NULL,
    quantity   bigint NOT NULL DEFAULT 0,
    version    bigint NOT NULL DEFAULT 0,
    updated_at INTEGER NOT NULL DEFAULT (CAST((julianday('now') - 2440587.5) * 86400000000 AS INTEGER)),
    UNIQUE (tenant_id, sku)
);

-- Publish work, written in the same transaction as the item change.
CREATE TABLE outbox (
    outbox_id     INTEGER PRIMARY KEY AUTOINCREMENT,
    item_id       BLOB NOT NULL,
    tenant_id     text NOT NULL,
    sku           text NOT NULL,
    quantity      bigint NOT NULL,
    version       bigint NOT NULL,
    channel       text NOT NULL,
    traceparent   text,
    enqueued_at   INTEGER NOT NULL DEFAULT (CAST((julianday('now') - 2440587.5) * 86400000000 AS INTEGER)),
    available_at  INTEGER NOT NULL DEFAULT (CAST((julianday('now') - 2440587.5) * 86400000000 AS INTEGER)),
    attempts      integer NOT NULL DEFAULT 0,
    UNIQUE (item_id, version, channel)
);
CREATE INDEX outbox_channel_item ON outbox (channel, item_id, version DESC);
CREATE INDEX outbox_tenant ON outbox (tenant_id);

CREATE TABLE publish_attempts (
    attempt_id   INTEGER PRIMARY KEY AUTOINCREMENT,
    item_id      BLOB NOT NULL,
    version      bigint NOT NULL,
    channel      text NOT NULL,
    attempt      integer NOT NULL,
    status       integer,
    result       text NOT NULL,
    latency_ms   bigint,
    error        text,
    attempted_at INTEGER NOT NULL DEFAULT (CAST((julianday('now') - 2440587.5) * 86400000000 AS INTEGER))
);
CREATE INDEX publish_attempts_item ON publish_attempts (item_id, attempted_at);

-- The newest version each channel is known to hold.
CREATE TABLE published_versions (
    item_id      BLOB NOT NULL,
    channel      text NOT NULL,
    version      bigint NOT NULL,
    published_at INTEGER NOT NULL DEFAULT (CAST((julianday('now') - 2440587.5) * 86400000000 AS INTEGER)),
    PRIMARY KEY (item_id, channel)
);

-- What failed, at which stage, why, how many times, and the last error.
CREATE TABLE dead_letters (
    dead_letter_id INTEGER PRIMARY KEY AUTOINCREMENT,
    stage          text NOT NULL,
    subject        text NOT NULL,
    channel        text,
    reason         text NOT NULL,
    error          text,
    body           text,
    attempts       integer NOT NULL DEFAULT 1,
    first_failed_at INTEGER NOT NULL DEFAULT (CAST((julianday('now') - 2440587.5) * 86400000000 AS INTEGER)),
    last_failed_at  INTEGER NOT NULL DEFAULT (CAST((julianday('now') - 2440587.5) * 86400000000 AS INTEGER)),
    resolved_at    INTEGER
);
CREATE UNIQUE INDEX dead_letters_open ON dead_letters (stage, subject, coalesce(channel, '')) WHERE resolved_at IS NULL;

-- How far each source has been applied: Kafka (source = kafka:group:topic) by partition,
-- files (source = file:path, partition 0) by byte offset.
CREATE TABLE source_checkpoints (
    source      text NOT NULL,
    partition   integer NOT NULL,
    next_offset bigint NOT NULL,
    updated_at  INTEGER NOT NULL DEFAULT (CAST((julianday('now') - 2440587.5) * 86400000000 AS INTEGER)),
    PRIMARY KEY (source, partition)
);

-- The catalog: tenants and their flags, the event journal, offers, items, the outbox,
-- publish attempts, dead letters and source checkpoints.

CREATE TABLE tenants (
    tenant_id    text PRIMARY KEY,
    sync_enabled boolean NOT NULL,
    created_at   timestamptz NOT NULL DEFAULT now(),
    updated_at   timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE suppliers (
    tenant_id    text NOT NULL REFERENCES tenants (tenant_id),
    supplier_id  text NOT NULL,
    sync_enabled boolean NOT NULL,
    created_at   timestamptz NOT NULL DEFAULT now(),
    updated_at   timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, supplier_id)
);

-- Every message ever received, once: a redelivery of a decoded event is counted on its
-- first row; a rejected message has its own row and keeps its raw bytes.
CREATE TABLE events (
    journal_id          bigserial PRIMARY KEY,
    event_id            uuid,
    tenant_id           text,
    supplier_id         text,
    sku                 text,
    event_type          text,
    quantity            bigint,
    delta               bigint,
    updated_at          timestamptz,
    sequence            bigint,          -- the u64 stored bit for bit
    effective_at        timestamptz,
    clock_drift_clamped boolean NOT NULL DEFAULT false,
    received_at         timestamptz NOT NULL,
    outcome             text NOT NULL,
    reason              text,
    detail              text,
    fingerprint         bigint,          -- the u64 stored bit for bit
    redelivery_count    bigint NOT NULL DEFAULT 0,
    payload_differs     boolean NOT NULL DEFAULT false,
    source              text NOT NULL,
    source_partition    integer NOT NULL,
    source_offset       bigint NOT NULL,
    traceparent         text,
    raw_payload         bytea,
    decided_at          timestamptz NOT NULL DEFAULT now(),
    last_redelivered_at timestamptz
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
    winner_event_id       uuid,
    snapshot_quantity     bigint,
    snapshot_effective_at timestamptz,
    snapshot_sequence     bigint,
    snapshot_event_id     uuid,
    adjustments           text NOT NULL DEFAULT '[]',
    updated_at            timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, supplier_id, sku)
) WITH (fillfactor = 70); -- room on each page for HOT updates: no indexed column ever changes
CREATE INDEX offers_item ON offers (tenant_id, sku);

CREATE TABLE items (
    item_id    uuid PRIMARY KEY,
    tenant_id  text NOT NULL,
    sku        text NOT NULL,
    quantity   bigint NOT NULL DEFAULT 0,
    version    bigint NOT NULL DEFAULT 0,
    updated_at timestamptz NOT NULL DEFAULT now(),
    UNIQUE (tenant_id, sku)
) WITH (fillfactor = 70);

-- Publish work, written in the same transaction as the item change.
CREATE TABLE outbox (
    outbox_id     bigserial PRIMARY KEY,
    item_id       uuid NOT NULL,
    tenant_id     text NOT NULL,
    sku           text NOT NULL,
    quantity      bigint NOT NULL,
    version       bigint NOT NULL,
    channel       text NOT NULL,
    traceparent   text,
    enqueued_at   timestamptz NOT NULL DEFAULT now(),
    available_at  timestamptz NOT NULL DEFAULT now(),
    attempts      integer NOT NULL DEFAULT 0,
    UNIQUE (item_id, version, channel)
);
CREATE INDEX outbox_channel_item ON outbox (channel, item_id, version DESC);
CREATE INDEX outbox_tenant ON outbox (tenant_id);

CREATE TABLE publish_attempts (
    attempt_id   bigserial PRIMARY KEY,
    item_id      uuid NOT NULL,
    version      bigint NOT NULL,
    channel      text NOT NULL,
    attempt      integer NOT NULL,
    status       integer,
    result       text NOT NULL,
    latency_ms   bigint,
    error        text,
    attempted_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX publish_attempts_item ON publish_attempts (item_id, attempted_at);

-- The newest version each channel is known to hold.
CREATE TABLE published_versions (
    item_id      uuid NOT NULL,
    channel      text NOT NULL,
    version      bigint NOT NULL,
    published_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (item_id, channel)
);

-- What failed, at which stage, why, how many times, and the last error.
CREATE TABLE dead_letters (
    dead_letter_id bigserial PRIMARY KEY,
    stage          text NOT NULL,
    subject        text NOT NULL,
    channel        text,
    reason         text NOT NULL,
    error          text,
    body           text,
    attempts       integer NOT NULL DEFAULT 1,
    first_failed_at timestamptz NOT NULL DEFAULT now(),
    last_failed_at  timestamptz NOT NULL DEFAULT now(),
    resolved_at    timestamptz
);
CREATE UNIQUE INDEX dead_letters_open ON dead_letters (stage, subject, coalesce(channel, '')) WHERE resolved_at IS NULL;

-- How far each source has been applied: Kafka (source = kafka:group:topic) by partition,
-- files (source = file:path, partition 0) by byte offset.
CREATE TABLE source_checkpoints (
    source      text NOT NULL,
    partition   integer NOT NULL,
    next_offset bigint NOT NULL,
    updated_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (source, partition)
);

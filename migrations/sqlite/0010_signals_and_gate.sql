-- SQLite dialect of postgres/0010_signals_and_gate.sql: source progress, the tracer's checks,
-- signal samples, rollouts with their history and sign-offs, and the flag of a supplier first
-- seen while the gate holds its tenant. Timestamps INTEGER microseconds, UUIDs BLOBs.

-- One row per source partition, replaced by every report. Queue lag is measured from it
-- (now − oldest_unapplied_at, and the silence since reported_at once it is long).
CREATE TABLE source_progress (
    source              text NOT NULL,
    partition           text NOT NULL,
    reported_at         INTEGER NOT NULL,
    oldest_unapplied_at INTEGER,
    PRIMARY KEY (source, partition)
);

-- The tracer's last check of an item: the version it re-derived and the gap it found (NULL
-- gap: the quantity re-derives exactly from the journal).
CREATE TABLE item_trace_checks (
    item_id         BLOB PRIMARY KEY,
    tenant_id       text NOT NULL,
    checked_version bigint NOT NULL,
    checked_at      INTEGER NOT NULL,
    gap             text,
    gap_stored      bigint,
    gap_rederived   bigint,
    gap_supplier    text,
    gap_event_id    BLOB
);
CREATE INDEX item_trace_checks_gaps ON item_trace_checks (tenant_id) WHERE gap IS NOT NULL;

-- One row per judgement of a tenant's signals ('*': overall), appended every interval.
CREATE TABLE signal_samples (
    sample_id            INTEGER PRIMARY KEY AUTOINCREMENT,
    tenant_id            text NOT NULL,
    at                   INTEGER NOT NULL,
    green                INTEGER NOT NULL,
    stale_items          REAL NOT NULL,
    stale_items_green    INTEGER NOT NULL,
    queue_lag            REAL NOT NULL,
    queue_lag_green      INTEGER NOT NULL,
    publish_errors       REAL NOT NULL,
    publish_errors_green INTEGER NOT NULL,
    trace_coverage       REAL NOT NULL,
    trace_coverage_green INTEGER NOT NULL
);
CREATE INDEX signal_samples_tenant_at ON signal_samples (tenant_id, at);
CREATE INDEX signal_samples_at ON signal_samples (at);

-- Publish errors are counted over a sliding window of attempts.
CREATE INDEX publish_attempts_attempted ON publish_attempts (attempted_at);

-- A tenant's stage of the gate; `suppliers` is a JSON array (canary: one; widening: several).
CREATE TABLE tenant_rollouts (
    tenant_id  text PRIMARY KEY,
    stage      text NOT NULL,
    suppliers  text NOT NULL DEFAULT '[]',
    changed_at INTEGER NOT NULL
);

CREATE TABLE rollout_changes (
    change_id  INTEGER PRIMARY KEY AUTOINCREMENT,
    tenant_id  text NOT NULL,
    at         INTEGER NOT NULL,
    actor      text NOT NULL,
    step       text NOT NULL,
    from_stage text NOT NULL,
    to_stage   text NOT NULL,
    suppliers  text NOT NULL DEFAULT '[]'
);
CREATE INDEX rollout_changes_tenant ON rollout_changes (tenant_id, change_id DESC);

CREATE TABLE gate_sign_offs (
    sign_off_id  INTEGER PRIMARY KEY AUTOINCREMENT,
    tenant_id    text NOT NULL,
    item_id      BLOB NOT NULL,
    sku          text NOT NULL,
    item_version bigint NOT NULL,
    signed_by    text NOT NULL,
    signed_at    INTEGER NOT NULL,
    note         text NOT NULL DEFAULT ''
);
CREATE INDEX gate_sign_offs_tenant ON gate_sign_offs (tenant_id, signed_at);

-- The flag a supplier first seen gets in this tenant; NULL: the configured default. The gate
-- sets it off at canary and widening (only the listed suppliers apply) and on when open.
ALTER TABLE tenants ADD COLUMN new_suppliers_enabled INTEGER;

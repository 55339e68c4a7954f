-- Supplier feeds the pull source reads (issue 16, decision 0015): settings bootstrapped from
-- the feeds file and state per feed; the windows pulled to their end; the drift full
-- refreshes found. A feed's token is kept by reference only (`token_env`), never in clear.
CREATE TABLE feeds (
    tenant_id              text NOT NULL,
    supplier_id            text NOT NULL,
    base_url               text NOT NULL,
    token_env              text NOT NULL,
    go_live_date           date NOT NULL,
    sync_frequency_hours   integer NOT NULL CHECK (sync_frequency_hours > 0),
    timezone               text NOT NULL,
    run_times              text NOT NULL,
    requests_per_second    integer CHECK (requests_per_second > 0),
    sync_enabled           boolean NOT NULL,
    last_sync_at           timestamptz,
    initial_sync_completed boolean NOT NULL DEFAULT false,
    last_full_refresh_at   timestamptz,
    created_at             timestamptz NOT NULL DEFAULT now(),
    updated_at             timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, supplier_id)
);

-- A window is recorded once pulled to its end; recording it again changes nothing. Gaps are
-- what lies between go_live_date and now outside every row.
CREATE TABLE feed_windows (
    tenant_id    text NOT NULL,
    supplier_id  text NOT NULL,
    kind         text NOT NULL CHECK (kind IN ('incremental', 'backfill')),
    since_at     timestamptz NOT NULL,
    until_at     timestamptz NOT NULL CHECK (until_at > since_at),
    n_records    bigint NOT NULL,
    n_pages      bigint NOT NULL,
    completed_at timestamptz NOT NULL,
    PRIMARY KEY (tenant_id, supplier_id, kind, since_at, until_at),
    FOREIGN KEY (tenant_id, supplier_id) REFERENCES feeds (tenant_id, supplier_id)
);

-- What a full refresh found different from the supplier's snapshot; only ever inserted.
CREATE TABLE feed_drifts (
    feed_drift_id     bigserial PRIMARY KEY,
    tenant_id         text NOT NULL,
    supplier_id       text NOT NULL,
    sku               text NOT NULL,
    stored_quantity   bigint,
    supplier_quantity bigint NOT NULL,
    as_of             timestamptz NOT NULL,
    detected_at       timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX feed_drifts_feed ON feed_drifts (tenant_id, supplier_id, detected_at DESC);

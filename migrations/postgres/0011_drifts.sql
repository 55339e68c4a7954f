-- Drift a channel showed (read back by reconciliation) and the item version that corrected
-- it (decision 0016). One row per correction; nothing here is ever updated.
CREATE TABLE drifts (
    drift_id          bigserial PRIMARY KEY,
    item_id           uuid NOT NULL,
    tenant_id         text NOT NULL,
    sku               text NOT NULL,
    channel           text NOT NULL,
    kind              text NOT NULL,
    shown_quantity    bigint,
    shown_version     bigint,
    catalog_version   bigint NOT NULL,
    corrected_version bigint NOT NULL,
    detected_at       timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX drifts_item ON drifts (item_id, detected_at DESC);
-- Reconciliation pages a tenant's items in item id order.
CREATE INDEX items_tenant_item ON items (tenant_id, item_id);

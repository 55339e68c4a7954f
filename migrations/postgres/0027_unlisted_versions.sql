-- The newest version of an item a channel skipped because it does not list the item's SKU
-- (decision 0044): done with, but not held, so not in published_versions. The stale counts
-- (signals, catalog_stale_items) read it beside published_versions: an item a channel does
-- not list is never stale there. One row per item and channel, like published_versions.
CREATE TABLE unlisted_versions (
    item_id    uuid NOT NULL,
    channel    text NOT NULL,
    version    bigint NOT NULL,
    skipped_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (item_id, channel)
);

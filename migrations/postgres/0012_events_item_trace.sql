-- An item's journal in the order its trace shows it (rows::sort_for_trace: ordering key,
-- then received_at and journal_id), so a trace page is read from the index without sorting
-- the item's whole journal (decision 0012). It also serves every lookup by (tenant_id, sku),
-- so it replaces events_item instead of adding a second index to every journal write.
CREATE INDEX events_item_trace ON events (
    tenant_id, sku, effective_at NULLS FIRST, (coalesce(sequence, 0) < 0), coalesce(sequence, 0),
    event_id NULLS FIRST, received_at, journal_id
);
DROP INDEX events_item;

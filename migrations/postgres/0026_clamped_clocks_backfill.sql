-- What 0025 added, for the clamped events decided before it (decision 0019, "A clamped
-- clock"), as far as the journal still holds them. One scan of the journal for its clamped
-- rows (rare: a supplier clock more than the allowance ahead). A clamped event whose journal
-- row retention had already dropped cannot be backfilled; the decision says what that leaves.

-- Claims are kept from the event's own time when it is later than the receipt, as `apply`
-- writes them since 0025.
UPDATE event_claims AS c
SET kept_from = e.updated_at
FROM events AS e
WHERE e.clock_drift_clamped
  AND e.updated_at > e.received_at
  AND c.event_id = e.event_id
  AND c.kept_from IS NULL;

-- Each offer remembers the latest own time of a clamped event decided on it.
UPDATE offers AS o
SET clamped_until = c.until
FROM (
    SELECT tenant_id, supplier_id, sku, max(updated_at) AS until
    FROM events
    WHERE clock_drift_clamped AND outcome IN ('applied', 'stale', 'superseded')
    GROUP BY tenant_id, supplier_id, sku
) AS c
WHERE o.tenant_id = c.tenant_id
  AND o.supplier_id = c.supplier_id
  AND o.sku = c.sku
  AND (o.clamped_until IS NULL OR o.clamped_until < c.until);

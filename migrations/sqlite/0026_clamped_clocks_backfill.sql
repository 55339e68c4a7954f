-- What 0025 added, for the clamped events decided before it (decision 0019, "A clamped
-- clock"), as far as the journal still holds them; as in Postgres. A live journal row is its
-- own claim here, and retention computes `kept_from` when it moves the claim out, so only
-- the offers need a backfill.
UPDATE offers
SET clamped_until = c.until
FROM (
    SELECT tenant_id, supplier_id, sku, max(updated_at) AS until
    FROM events
    WHERE clock_drift_clamped AND outcome IN ('applied', 'stale', 'superseded')
    GROUP BY tenant_id, supplier_id, sku
) AS c
WHERE offers.tenant_id = c.tenant_id
  AND offers.supplier_id = c.supplier_id
  AND offers.sku = c.sku
  AND (offers.clamped_until IS NULL OR offers.clamped_until < c.until);

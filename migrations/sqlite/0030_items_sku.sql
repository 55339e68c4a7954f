-- Items by SKU alone: a channel that knows listings by SKU (a marketplace seller account)
-- finds the SKUs that items of several tenants it serves hold, and writes none of them
-- (decision 0056). An item's SKU never changes, so updates of its quantity and version leave
-- the index alone.
CREATE INDEX items_sku ON items (sku);

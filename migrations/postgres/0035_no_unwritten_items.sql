-- An item exists once something was applied to it. A batch retried with locks created a row
-- for every item it touched to lock it, and left the ones it did not write (their events held,
-- or changing nothing) at version 0: listed, traced, counted as a tenant sharing a SKU and
-- compared by reconciliation as if they were items at 0. The batch now deletes them before it
-- commits; these are the rows earlier builds left. Nothing references `items`.
DELETE FROM items WHERE version = 0;

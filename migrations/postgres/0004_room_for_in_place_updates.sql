-- Offers, items and outbox rows are rewritten by nearly every batch that touches them.
-- Leaving a third of each page free lets PostgreSQL put the new row version on the same
-- page without touching the indexes (a HOT update), instead of a new page and an index
-- entry per index per update. Applies to pages written from now on.
ALTER TABLE offers SET (fillfactor = 70);
ALTER TABLE items SET (fillfactor = 70);
ALTER TABLE outbox SET (fillfactor = 70);

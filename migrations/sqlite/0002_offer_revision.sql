-- A counter bumped by every write of an offer. The PostgreSQL store guards its optimistic
-- writes with it; SQLite serialises writers, so here it only keeps the schemas alike.
ALTER TABLE offers ADD COLUMN revision INTEGER NOT NULL DEFAULT 0;

-- An item exists once something was applied to it. PostgreSQL's batches retried with locks
-- left rows at version 0 (migration 0035 there deletes them); SQLite never made any. The same
-- statement here keeps the two schemas' histories side by side.
DELETE FROM items WHERE version = 0;

-- How many pulled windows a row stands for: 1 as pulled; more once retention merged old
-- windows that overlap or touch into one row covering their span, with their records and
-- pages summed (decision 0035). A feed's windows then stay a few rows per gap plus the
-- retention's days, however long it runs.
ALTER TABLE feed_windows ADD COLUMN n_windows bigint NOT NULL DEFAULT 1 CHECK (n_windows >= 1);

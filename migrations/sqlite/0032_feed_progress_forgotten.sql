-- A feed's pages were reported as source progress, and no feed ever said it was done: once
-- the worker that pulled them stopped, their rows aged into queue lag for every tenant (red
-- after 90 s, for good). Feeds report no progress now; the rows they left go.
DELETE FROM source_progress WHERE source LIKE 'feed:%';

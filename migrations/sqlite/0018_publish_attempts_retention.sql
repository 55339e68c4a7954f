-- Publish attempts are kept for the journal's retention (decision 0030): older ones are
-- deleted in bounded chunks. Attempts made before `attempts_kept_since` are gone (trace says so).
ALTER TABLE journal_retention ADD COLUMN attempts_kept_since INTEGER;

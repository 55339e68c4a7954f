-- Publish attempts, partitioned by the day each was made (decision 0030), so retention drops
-- whole days of them as it does the journal's, instead of letting them grow without end (about
-- two rows per applied event) or deleting rows that only a vacuum would give back.

ALTER TABLE publish_attempts RENAME TO publish_attempts_unpartitioned;
ALTER INDEX publish_attempts_pkey RENAME TO publish_attempts_unpartitioned_pkey;
ALTER INDEX publish_attempts_item RENAME TO publish_attempts_unpartitioned_item;
ALTER INDEX publish_attempts_attempted RENAME TO publish_attempts_unpartitioned_attempted;

CREATE TABLE publish_attempts (LIKE publish_attempts_unpartitioned INCLUDING DEFAULTS INCLUDING CONSTRAINTS)
    PARTITION BY RANGE (attempted_at);
-- The id sequence belongs to the new table: dropping the old rows' partition keeps it.
ALTER SEQUENCE publish_attempts_attempt_id_seq OWNED BY publish_attempts.attempt_id;
ALTER TABLE publish_attempts ADD PRIMARY KEY (attempt_id, attempted_at);
CREATE INDEX publish_attempts_item ON publish_attempts (item_id, attempted_at);
CREATE INDEX publish_attempts_attempted ON publish_attempts (attempted_at);
-- The partitioned table's key is (attempt_id, attempted_at): attaching builds it.
ALTER TABLE publish_attempts_unpartitioned DROP CONSTRAINT publish_attempts_unpartitioned_pkey;

-- Attempts made before `attempts_kept_since` were dropped (trace says so).
ALTER TABLE journal_retention ADD COLUMN attempts_kept_since timestamptz;

-- The attempts made so far become the first partition, up to the end of today (UTC); the next
-- days get partitions of their own, and the worker keeps creating them ahead.
DO $$
DECLARE
    tomorrow timestamptz := date_trunc('day', now() AT TIME ZONE 'UTC') AT TIME ZONE 'UTC' + interval '1 day';
    day timestamptz;
BEGIN
    EXECUTE format('ALTER TABLE publish_attempts ATTACH PARTITION publish_attempts_unpartitioned FOR VALUES FROM (MINVALUE) TO (%L)',
                   tomorrow);
    FOR n IN 0..6 LOOP
        day := tomorrow + n * interval '1 day';
        EXECUTE format('CREATE TABLE %I PARTITION OF publish_attempts FOR VALUES FROM (%L) TO (%L)',
                       'publish_attempts_' || to_char(day AT TIME ZONE 'UTC', 'YYYYMMDD'), day, day + interval '1 day');
    END LOOP;
END $$;

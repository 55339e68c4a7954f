-- The journal, partitioned by the day each row was received (decision 0019), so retention
-- archives and drops whole days instead of deleting rows. A partitioned table can hold no
-- unique index on event_id alone, so the claim of an event id moves to `event_claims`, a
-- compact table kept for the dedupe horizon (catalog_core::DEDUPE_HORIZON), longer than the
-- journal if need be.

ALTER TABLE events RENAME TO events_unpartitioned;
ALTER INDEX events_pkey RENAME TO events_unpartitioned_pkey;
ALTER INDEX events_event_id_decided RENAME TO events_unpartitioned_event_id_decided;
ALTER INDEX events_item_trace RENAME TO events_unpartitioned_item_trace;
ALTER INDEX events_tenant_received RENAME TO events_unpartitioned_tenant_received;
ALTER INDEX events_trace_id RENAME TO events_unpartitioned_trace_id;

CREATE TABLE events (LIKE events_unpartitioned INCLUDING DEFAULTS INCLUDING CONSTRAINTS)
    PARTITION BY RANGE (received_at);
-- The id sequence belongs to the new table: dropping the old rows' partition keeps it.
ALTER SEQUENCE events_journal_id_seq OWNED BY events.journal_id;
ALTER TABLE events ADD PRIMARY KEY (journal_id, received_at);
CREATE INDEX events_item_trace ON events (
    tenant_id, sku, effective_at NULLS FIRST, (coalesce(sequence, 0) < 0), coalesce(sequence, 0),
    event_id NULLS FIRST, received_at, journal_id
);
CREATE INDEX events_tenant_received ON events (tenant_id, received_at);
CREATE INDEX events_trace_id ON events (substr(traceparent, 4, 32)) WHERE traceparent IS NOT NULL;

-- One claim per decided event id (applied, stale, superseded, held): what makes every later
-- delivery a duplicate. (journal_id, received_at) finds the journal row while it is kept.
CREATE TABLE event_claims (
    event_id    uuid PRIMARY KEY,
    journal_id  bigint NOT NULL,
    received_at timestamptz NOT NULL,
    fingerprint bigint NOT NULL,
    held        boolean NOT NULL
);
-- Claims arrive in about the order they were received: a BRIN index finds the expired ones
-- at almost no cost to each insert.
CREATE INDEX event_claims_received ON event_claims USING brin (received_at);
-- Held events are pending work: retention never drops the days that hold them.
CREATE INDEX event_claims_held ON event_claims (received_at) WHERE held;

INSERT INTO event_claims (event_id, journal_id, received_at, fingerprint, held)
SELECT event_id, journal_id, received_at, fingerprint, outcome = 'held'
FROM events_unpartitioned
WHERE outcome IN ('applied', 'stale', 'superseded', 'held');

DROP INDEX events_unpartitioned_event_id_decided;
-- The partitioned table's key is (journal_id, received_at): attaching builds it.
ALTER TABLE events_unpartitioned DROP CONSTRAINT events_unpartitioned_pkey;

-- What retention did last: the journal keeps rows received since `kept_since`; older ones
-- were archived to `archive` (trace and replay say so).
CREATE TABLE journal_retention (
    only_row    boolean PRIMARY KEY DEFAULT true CHECK (only_row),
    kept_since  timestamptz,
    archive     text,
    updated_at  timestamptz NOT NULL DEFAULT now()
);

-- The rows journaled so far become the first partition, up to the end of today (UTC); the
-- next days get partitions of their own, and the worker keeps creating them ahead.
DO $$
DECLARE
    tomorrow timestamptz := date_trunc('day', now() AT TIME ZONE 'UTC') AT TIME ZONE 'UTC' + interval '1 day';
    day timestamptz;
BEGIN
    EXECUTE format('ALTER TABLE events ATTACH PARTITION events_unpartitioned FOR VALUES FROM (MINVALUE) TO (%L)',
                   tomorrow);
    FOR n IN 0..6 LOOP
        day := tomorrow + n * interval '1 day';
        EXECUTE format('CREATE TABLE %I PARTITION OF events FOR VALUES FROM (%L) TO (%L)',
                       'events_' || to_char(day AT TIME ZONE 'UTC', 'YYYYMMDD'), day, day + interval '1 day');
    END LOOP;
END $$;

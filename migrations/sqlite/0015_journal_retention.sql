-- Journal retention (decision 0019): rows older than the retention are archived and deleted
-- in bounded chunks. A deleted decided row's claim moves here, kept for the dedupe horizon
-- (catalog_core::DEDUPE_HORIZON), so a late redelivery is still recognised.
CREATE TABLE event_claims (
    event_id    BLOB PRIMARY KEY,
    fingerprint INTEGER NOT NULL,
    received_at INTEGER NOT NULL
) WITHOUT ROWID;
CREATE INDEX event_claims_received ON event_claims (received_at);

-- What retention did last: the journal keeps rows received since `kept_since`; older ones
-- were archived to `archive`.
CREATE TABLE journal_retention (
    only_row   INTEGER PRIMARY KEY CHECK (only_row = 1),
    kept_since INTEGER,
    archive    TEXT,
    updated_at INTEGER NOT NULL
);

-- SQLite dialect of postgres/0009_admin.sql: API tokens (SHA-256 hashes only), the audit
-- log, a note on a dead letter an operator resolved, and the journal's trace id lookup.

CREATE TABLE admin_tokens (
    name       text PRIMARY KEY,
    role       text NOT NULL,
    token_hash BLOB NOT NULL,
    created_at INTEGER NOT NULL,
    revoked_at INTEGER
);
CREATE UNIQUE INDEX admin_tokens_live_hash ON admin_tokens (token_hash) WHERE revoked_at IS NULL;

CREATE TABLE audit_log (
    audit_id INTEGER PRIMARY KEY AUTOINCREMENT,
    at       INTEGER NOT NULL,
    actor    text NOT NULL,
    action   text NOT NULL,
    target   text NOT NULL,
    before   text,
    after    text
);

ALTER TABLE dead_letters ADD COLUMN note text;

CREATE INDEX events_trace_id ON events (substr(traceparent, 4, 32)) WHERE traceparent IS NOT NULL;

-- The admin service (issue 14, decision 0011): API tokens, kept only as SHA-256 hashes; the
-- audit log of every operator write; a note on a dead letter an operator resolved; and the
-- lookup of journal rows by W3C trace id.

CREATE TABLE admin_tokens (
    name       text PRIMARY KEY,
    role       text NOT NULL,
    token_hash bytea NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now(),
    revoked_at timestamptz
);
-- A live token is found by its hash; two live tokens never share one.
CREATE UNIQUE INDEX admin_tokens_live_hash ON admin_tokens (token_hash) WHERE revoked_at IS NULL;

CREATE TABLE audit_log (
    audit_id bigserial PRIMARY KEY,
    at       timestamptz NOT NULL DEFAULT now(),
    actor    text NOT NULL,
    action   text NOT NULL,
    target   text NOT NULL,
    before   text,            -- JSON
    after    text             -- JSON
);

ALTER TABLE dead_letters ADD COLUMN note text;

-- The trace id of a traceparent `00-<trace id>-<parent id>-<flags>` is characters 4 to 35.
CREATE INDEX events_trace_id ON events (substr(traceparent, 4, 32)) WHERE traceparent IS NOT NULL;

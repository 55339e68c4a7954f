-- A tenant's held journal rows by reception time: switching sync on (and `replay
-- --held-only`) decides the held events of a window, and reads them alone instead of the
-- tenant's whole journal of the window. Held rows are few (events of a switched-off tenant or
-- supplier), so the index costs the journal's writes almost nothing (decision 0019).
CREATE INDEX events_held ON events (tenant_id, received_at) WHERE outcome = 'held';

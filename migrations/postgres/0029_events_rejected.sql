-- Rejected journal rows by reception time, newest first: support lists the messages the
-- rules refused (`GET /v1/rejections`), most of which have no event id or tenant to be found
-- by. Rejections are few beside the journal, so the index costs its writes almost nothing.
CREATE INDEX events_rejected ON events (received_at) WHERE outcome = 'rejected';

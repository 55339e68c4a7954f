-- The journal rows that name an event id without deciding it (rejections, and redeliveries
-- journaled after their first row was archived), found by that id: support looks an event up
-- by its id, and one that was only ever rejected has no claim to be found through. Such rows
-- are few, so the index costs the journal's writes almost nothing (decision 0034).
CREATE INDEX events_undecided_event_id ON events (event_id)
    WHERE outcome NOT IN ('applied', 'stale', 'superseded', 'held');

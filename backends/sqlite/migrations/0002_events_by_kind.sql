-- persistkit schema version 2 (SQLite).
--
-- Events by kind and time, newest or oldest first: "the latest 100 events
-- of one kind" is an index range scan, however long the log.
CREATE INDEX events_by_kind ON events (ns, kind, occurred_at, id);

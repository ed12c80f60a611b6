-- persistkit schema version 2 (Postgres).
--
-- Events by kind and time, newest or oldest first: "the latest 100 events
-- of one kind" is an index range scan, however long the log.
CREATE INDEX events_by_kind ON events (ns, kind, occurred_at, id);

-- An append in one round trip. It takes the namespace's log head (locked
-- until commit, so appends to one namespace serialize and positions follow
-- commit order), looks each event up by its dedupe key (a statement of its
-- own, so it sees every append that committed while this one waited, and
-- the events inserted earlier in this batch), inserts the new ones at the
-- next positions and moves the head. One row per input event, in order.
-- A full log raises SQLSTATE PK001 and the whole batch rolls back.
-- `SET search_path FROM CURRENT` keeps the schema the migration ran in.
CREATE FUNCTION append_events(
    p_ns text,
    p_kinds text[],
    p_times timestamptz[],
    p_digests text[],
    p_datas text[]
) RETURNS TABLE (event_id bigint, event_position bigint, duplicate boolean)
LANGUAGE plpgsql
SET search_path FROM CURRENT
AS $$
DECLARE
    head bigint;
    found_id bigint;
    found_position bigint;
BEGIN
    INSERT INTO event_log_heads AS h (ns, last_position) VALUES (p_ns, 0)
    ON CONFLICT (ns) DO UPDATE SET last_position = h.last_position
    RETURNING h.last_position INTO head;
    FOR i IN 1 .. coalesce(array_length(p_kinds, 1), 0) LOOP
        SELECT e.id, e.position INTO found_id, found_position
        FROM events e
        WHERE e.ns = p_ns AND e.kind = p_kinds[i]
          AND e.occurred_at = p_times[i] AND e.digest = p_digests[i];
        IF FOUND THEN
            event_id := found_id;
            event_position := found_position;
            duplicate := true;
            RETURN NEXT;
            CONTINUE;
        END IF;
        IF head >= 9223372036854775807 THEN
            RAISE EXCEPTION 'the event log of namespace % is full', p_ns
                USING ERRCODE = 'PK001';
        END IF;
        head := head + 1;
        INSERT INTO events (ns, position, id, kind, occurred_at, digest, data)
        VALUES (p_ns, head, head, p_kinds[i], p_times[i], p_digests[i], p_datas[i]::jsonb);
        event_id := head;
        event_position := head;
        duplicate := false;
        RETURN NEXT;
    END LOOP;
    UPDATE event_log_heads SET last_position = head WHERE ns = p_ns;
END;
$$;

-- persistkit schema version 3 (Postgres).
--
-- `append_events` with one statement per new event instead of two: the
-- insert itself skips a duplicate (ON CONFLICT on the dedupe key, which
-- also sees, and waits for, any append of the same event by another
-- transaction), and only then is the original looked up, by a statement of
-- its own that sees it. Same arguments, same rows out, same rules: the log
-- head is locked until commit, positions follow commit order, a full log
-- raises SQLSTATE PK001 unless the event is a duplicate, and the whole
-- batch then rolls back.
CREATE OR REPLACE FUNCTION append_events(
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
    start bigint;
    inserted bigint;
BEGIN
    INSERT INTO event_log_heads AS h (ns, last_position) VALUES (p_ns, 0)
    ON CONFLICT (ns) DO UPDATE SET last_position = h.last_position
    RETURNING h.last_position INTO head;
    start := head;
    FOR i IN 1 .. coalesce(array_length(p_kinds, 1), 0) LOOP
        inserted := NULL;
        IF head < 9223372036854775807 THEN
            INSERT INTO events (ns, position, id, kind, occurred_at, digest, data)
            VALUES (p_ns, head + 1, head + 1, p_kinds[i], p_times[i], p_digests[i], p_datas[i]::jsonb)
            ON CONFLICT (ns, kind, occurred_at, digest) DO NOTHING
            RETURNING position INTO inserted;
        END IF;
        IF inserted IS NOT NULL THEN
            head := inserted;
            event_id := inserted;
            event_position := inserted;
            duplicate := false;
            RETURN NEXT;
            CONTINUE;
        END IF;
        SELECT e.id, e.position INTO event_id, event_position
        FROM events e
        WHERE e.ns = p_ns AND e.kind = p_kinds[i]
          AND e.occurred_at = p_times[i] AND e.digest = p_digests[i];
        IF NOT FOUND THEN
            RAISE EXCEPTION 'the event log of namespace % is full', p_ns
                USING ERRCODE = 'PK001';
        END IF;
        duplicate := true;
        RETURN NEXT;
    END LOOP;
    IF head <> start THEN
        UPDATE event_log_heads SET last_position = head WHERE ns = p_ns;
    END IF;
END;
$$;

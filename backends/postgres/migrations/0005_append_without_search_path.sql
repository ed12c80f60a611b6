-- persistkit schema version 5 (Postgres).
--
-- `append_events` again, the same body as migration 3, with the store's
-- schema written into it when this migration runs instead of
-- `SET search_path FROM CURRENT`: a function with a SET clause pays a GUC
-- save and restore on every call (see migration 4). CREATE OR REPLACE
-- drops the SET clause with the old definition.
DO $migration$
BEGIN
    EXECUTE format($f$
CREATE OR REPLACE FUNCTION %1$s.append_events(
    p_ns text,
    p_kinds text[],
    p_times timestamptz[],
    p_digests text[],
    p_datas text[]
) RETURNS TABLE (event_id bigint, event_position bigint, duplicate boolean)
LANGUAGE plpgsql
AS $$
DECLARE
    head bigint;
    start bigint;
    inserted bigint;
BEGIN
    INSERT INTO %1$s.event_log_heads AS h (ns, last_position) VALUES (p_ns, 0)
    ON CONFLICT (ns) DO UPDATE SET last_position = h.last_position
    RETURNING h.last_position INTO head;
    start := head;
    FOR i IN 1 .. coalesce(array_length(p_kinds, 1), 0) LOOP
        inserted := NULL;
        IF head < 9223372036854775807 THEN
            INSERT INTO %1$s.events (ns, position, id, kind, occurred_at, digest, data)
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
        FROM %1$s.events e
        WHERE e.ns = p_ns AND e.kind = p_kinds[i]
          AND e.occurred_at = p_times[i] AND e.digest = p_digests[i];
        IF NOT FOUND THEN
            RAISE EXCEPTION 'the event log of namespace %% is full', p_ns
                USING ERRCODE = 'PK001';
        END IF;
        duplicate := true;
        RETURN NEXT;
    END LOOP;
    IF head <> start THEN
        UPDATE %1$s.event_log_heads SET last_position = head WHERE ns = p_ns;
    END IF;
END;
$$
$f$, quote_ident(current_schema()));
END;
$migration$;
